//! Training checkpoints: folders `<results>/weights/<name>_<iteration>/` holding the model
//! (`model.bpk`, self-describing, see `ssd_model::checkpoint`), the optimizer state
//! (`optimizer.bpk`, momentum included) and the run's state (`train.json`: iteration, recipe,
//! network, classes). A folder is written whole under a hidden temporary name, each file flushed,
//! then renamed into place, so a kill at any moment leaves only complete checkpoints.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use ssd_data::ClassList;
use ssd_model::checkpoint::model_file;
use ssd_model::{CheckpointInfo, MODEL_FILE, Ssd, SsdConfig};

use crate::{TrainConfig, TrainError};

/// The state file inside a checkpoint folder.
pub const STATE_FILE: &str = "train.json";
/// The optimizer file inside a checkpoint folder.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// What `train.json` in a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Iterations done.
    pub iteration: u64,
    /// The recipe of the run.
    pub config: TrainConfig,
    /// The network's configuration.
    pub model: SsdConfig,
    /// Class names.
    pub classes: Vec<String>,
    /// The dataset's category id of each class (COCO), when it numbers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_ids: Option<Vec<u64>>,
}

/// Keys that `train.json` files of earlier versions kept in `config` and that now live elsewhere:
/// `model` (the `--model` text; the network is the state's `model`), `classes` (a path; the names
/// are the state's `classes`) and `backend` (chosen again at each start).
const LEGACY_CONFIG_KEYS: [&str; 3] = ["model", "classes", "backend"];

/// Reads `train.json` of a checkpoint folder (or of the folder holding a given `model.bpk`).
///
/// Files of earlier versions are migrated on reading: the [legacy keys](LEGACY_CONFIG_KEYS) are
/// dropped and a missing `model-save-name` becomes the stem of their `model`.
pub fn read_state(path: &Path) -> Result<(PathBuf, TrainState), TrainError> {
    let dir = if path.is_dir() {
        path.to_owned()
    } else {
        model_file(path)
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default()
    };
    let state_path = dir.join(STATE_FILE);
    let resume_error = |message: String| TrainError::Resume {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(&state_path).map_err(|e| {
        resume_error(format!(
            "cannot read {} ({e}); resume takes a checkpoint folder written by `ssd train`",
            state_path.display()
        ))
    })?;
    let bad = |e: serde_json::Error| resume_error(format!("bad {}: {e}", state_path.display()));
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
    if let Some(config) = value
        .get_mut("config")
        .and_then(serde_json::Value::as_object_mut)
    {
        let legacy_model = config.get("model").and_then(|m| m.as_str()).map(|m| {
            Path::new(m)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("ssd")
                .to_owned()
        });
        for key in LEGACY_CONFIG_KEYS {
            config.remove(key);
        }
        if config.get("model-save-name").is_none_or(|v| v.is_null()) {
            let name = legacy_model.unwrap_or_else(|| "ssd".to_owned());
            config.insert("model-save-name".to_owned(), name.into());
        }
    }
    let state: TrainState = serde_json::from_value(value).map_err(bad)?;
    state
        .config
        .validate()
        .map_err(|e| resume_error(format!("{}: {e}", state_path.display())))?;
    Ok((dir, state))
}

/// Checks that the optimizer state in `path` belongs to `model`: each state tensor is named (in
/// the file's metadata) after a parameter of `model` and has that parameter's shape. Burn would
/// otherwise load the state of another network without a word (its parameters simply find no
/// momentum, or the wrong one).
pub(crate) fn check_optimizer_file(path: &Path, model: &Ssd) -> Result<(), TrainError> {
    let bad = |message: String| TrainError::Optimizer {
        path: path.to_owned(),
        message,
    };
    let reader =
        burn_pack::Reader::from_file(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let names = reader.metadata().clone();
    let shapes = parameter_shapes(model);
    let tensors = reader
        .into_tensors()
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    for tensor in tensors {
        let Some(id) = tensor.param_id else { continue };
        let Some(name) = names.get(&id.to_string()) else {
            return Err(bad(format!("state `{}` names no parameter", tensor.name)));
        };
        match shapes.get(name) {
            Some(shape) if shape.as_slice() == tensor.shape.as_slice() => {}
            Some(shape) => {
                return Err(bad(format!(
                    "the state of `{name}` has shape {:?} but the model's `{name}` is {shape:?}: \
                     the optimizer of another network",
                    tensor.shape.as_slice()
                )));
            }
            None => {
                return Err(bad(format!(
                    "state for `{name}`, which the model does not have: the optimizer of \
                     another network"
                )));
            }
        }
    }
    Ok(())
}

/// Every float parameter of `model` by its module path (`conf.0.weight`), with its shape.
fn parameter_shapes(model: &Ssd) -> BTreeMap<String, Vec<usize>> {
    struct Shapes(BTreeMap<String, Vec<usize>>, Vec<String>);
    impl ModuleVisitor for Shapes {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.1.push(name.to_owned());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.insert(self.1.join("."), param.val().dims().to_vec());
        }
    }
    let mut shapes = Shapes(BTreeMap::new(), Vec::new());
    model.visit(&mut shapes);
    shapes.0
}

/// Writes a checkpoint folder atomically: everything into a hidden partial folder, each file
/// flushed, then one rename.
pub(crate) fn save_checkpoint(
    dir: &Path,
    model: &Ssd,
    optimizer: &ModuleOptimizer,
    state: &TrainState,
    classes: &ClassList,
) -> Result<(), TrainError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(TrainError::io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(TrainError::io(&partial))?;
    let info = CheckpointInfo {
        config: state.model.clone(),
        classes: classes.clone(),
        iteration: Some(state.iteration),
    };
    model.save_trained(&partial.join(MODEL_FILE), &info)?;
    if let Some(ms) = std::env::var("SSD_TEST_CHECKPOINT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // For the kill-during-write test only: holds the checkpoint half written for a while.
        std::thread::sleep(Duration::from_millis(ms));
    }
    let opt_path = partial.join(OPTIMIZER_FILE);
    optimizer
        .save(&opt_path)
        .map_err(|e| TrainError::Optimizer {
            path: opt_path.clone(),
            message: format!("cannot write: {e:?}"),
        })?;
    let state_path = partial.join(STATE_FILE);
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::File::create(&state_path)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .map_err(TrainError::io(&state_path))?;
    std::fs::File::open(&opt_path)
        .and_then(|f| f.sync_all())
        .map_err(TrainError::io(&opt_path))?;
    if dir.exists() {
        // Same iteration saved again (a resumed run): move the old one aside first.
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(TrainError::io(dir))?;
        std::fs::rename(&partial, dir).map_err(TrainError::io(dir))?;
        let _ = std::fs::remove_dir_all(old);
    } else {
        std::fs::rename(&partial, dir).map_err(TrainError::io(dir))?;
    }
    let _ = std::fs::File::open(parent).and_then(|f| f.sync_all());
    Ok(())
}

/// Removes partial checkpoint folders left by a killed run.
pub(crate) fn remove_stale_partials(weights_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(weights_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && (name.contains(".partial-") || name.contains(".old-")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
