//! Trained models on disk: native checkpoints (self-describing `.bpk`, or a training checkpoint
//! folder holding one) and PyTorch `.pth` files of the ports (amdegroot, torchvision, lufficc).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::Device;
use ssd_data::ClassList;
use ssd_model::{LoadMode, Ssd, SsdConfig, checkpoint_metadata, pth_entries};

/// Metadata key of the model configuration (JSON) in native checkpoints.
pub const META_CONFIG: &str = "ssd.config";
/// Metadata key of the class names (JSON array, background excluded).
pub const META_CLASSES: &str = "ssd.classes";
/// Metadata key of the training iteration the weights are from.
pub const META_ITERATION: &str = "ssd.iteration";
/// File name of the model inside a training checkpoint folder.
pub const MODEL_FILE: &str = "model.bpk";

/// A model ready for inference with what it needs to be used.
#[derive(Debug)]
pub struct TrainedModel {
    /// The network, on the requested device.
    pub model: Ssd,
    /// Its configuration (input size, priors, classes).
    pub config: SsdConfig,
    /// Class names (without background), label `l` is `classes.name(l - 1)`.
    pub classes: ClassList,
    /// The file the weights came from.
    pub path: PathBuf,
}

/// Metadata that makes a native checkpoint self-describing.
pub fn checkpoint_meta(
    config: &SsdConfig,
    classes: &ClassList,
    iteration: u64,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut meta = BTreeMap::new();
    meta.insert(META_CONFIG.to_owned(), serde_json::to_string(config)?);
    meta.insert(
        META_CLASSES.to_owned(),
        serde_json::to_string(classes.names())?,
    );
    meta.insert(META_ITERATION.to_owned(), iteration.to_string());
    Ok(meta)
}

/// The model file of `path`: a training checkpoint folder's `model.bpk`, else `path` itself.
pub fn model_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_owned()
    }
}

/// Loads a trained model from a checkpoint folder, a native `.bpk` or a PyTorch `.pth` (layout
/// detected from its keys). `classes` names the classes of a `.pth` (default: the 20 VOC classes
/// when it has 21 outputs); for native checkpoints the stored names are used unless given.
pub fn load_trained(
    path: &Path,
    classes: Option<&Path>,
    device: &Device,
) -> anyhow::Result<TrainedModel> {
    let file = model_file(path);
    if !file.exists() {
        bail!("trained model {} not found", file.display());
    }
    let is_pth = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("pth" | "pt")
    );
    let given = classes.map(ClassList::from_file).transpose()?;
    if is_pth {
        let entries = pth_entries(&file)?;
        let config = SsdConfig::from_state_dict(&entries)
            .map_err(|m| anyhow::anyhow!("{}: {m}", file.display()))?;
        let classes = match given {
            Some(c) => c,
            None if config.num_classes == 21 => ClassList::voc(),
            None => bail!(
                "{} has {} classes (with background), not VOC's 21: name them with --classes FILE",
                file.display(),
                config.num_classes
            ),
        };
        check_classes(&classes, &config, &file)?;
        let (model, _report) = config.init(device)?.load_pytorch(&file, LoadMode::Full)?;
        return Ok(TrainedModel {
            model,
            config,
            classes,
            path: file,
        });
    }
    let meta = checkpoint_metadata(&file)?;
    let config_json = meta.get(META_CONFIG).with_context(|| {
        format!(
            "{} has no `{META_CONFIG}` metadata: not a checkpoint written by `ssd train`",
            file.display()
        )
    })?;
    let config: SsdConfig = serde_json::from_str(config_json)
        .with_context(|| format!("{}: bad `{META_CONFIG}` metadata", file.display()))?;
    let classes = match given {
        Some(c) => c,
        None => {
            let names: Vec<String> = meta
                .get(META_CLASSES)
                .map(|s| serde_json::from_str(s))
                .transpose()
                .with_context(|| format!("{}: bad `{META_CLASSES}` metadata", file.display()))?
                .unwrap_or_default();
            ClassList::new(names).with_context(|| format!("class names in {}", file.display()))?
        }
    };
    check_classes(&classes, &config, &file)?;
    let model = config.init(device)?.load_checkpoint(&file)?;
    Ok(TrainedModel {
        model,
        config,
        classes,
        path: file,
    })
}

fn check_classes(classes: &ClassList, config: &SsdConfig, file: &Path) -> anyhow::Result<()> {
    if classes.num_classes_with_background() != config.num_classes {
        bail!(
            "{} predicts {} classes (with background) but the class list has {} names",
            file.display(),
            config.num_classes,
            classes.len()
        );
    }
    Ok(())
}

/// The model configuration named by `--model`: a preset (`ssd300`, `ssd512`, `small`) or a JSON
/// file of [`SsdConfig`], with `num_classes` set to `num_classes`.
pub fn model_config(name: &str, num_classes: usize) -> anyhow::Result<SsdConfig> {
    let mut config = match name {
        "ssd300" => SsdConfig::ssd300(num_classes),
        "ssd512" => SsdConfig::ssd512(num_classes),
        "small" => SsdConfig::small(num_classes),
        file if file.ends_with(".json") => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read model config {file}"))?;
            serde_json::from_str::<SsdConfig>(&text)
                .with_context(|| format!("model config {file}"))?
        }
        other => bail!("unknown --model `{other}`: expected ssd300, ssd512, small or a .json file"),
    };
    config.num_classes = num_classes;
    config
        .validate()
        .with_context(|| format!("--model {name}"))?;
    Ok(config)
}
