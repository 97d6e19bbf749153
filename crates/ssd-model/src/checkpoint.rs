//! Native checkpoints: Burn's burnpack format, made self-describing by metadata (the model
//! configuration as JSON, the class names, the training iteration), so that a file alone is
//! enough to detect with. Written atomically ([`Ssd::save_checkpoint_with`]).
//!
//! A training run writes folders `<name>_<iteration>/` holding [`MODEL_FILE`] (plus the
//! optimizer state and the settings, which `ssd-train` owns); [`model_file`] maps such a folder
//! to its model file, so a folder and a `.bpk` can be given wherever a model is asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ssd_data::ClassList;

use crate::error::CheckpointProblem;
use crate::{ModelError, Ssd, SsdConfig, checkpoint_metadata};

/// Metadata key of the model configuration (JSON of [`SsdConfig`]).
pub const META_CONFIG: &str = "ssd.config";
/// Metadata key of the class names (JSON array, background excluded).
pub const META_CLASSES: &str = "ssd.classes";
/// Metadata key of the dataset's category id of each class (JSON array; COCO-trained models).
pub const META_CATEGORY_IDS: &str = "ssd.category_ids";
/// Metadata key of the training iteration the weights are from.
pub const META_ITERATION: &str = "ssd.iteration";
/// File name of the model inside a training checkpoint folder.
pub const MODEL_FILE: &str = "model.bpk";

/// What a native checkpoint says about itself.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    /// The network's configuration.
    pub config: SsdConfig,
    /// Class names (background excluded).
    pub classes: ClassList,
    /// Training iteration of the weights, when recorded.
    pub iteration: Option<u64>,
}

impl CheckpointInfo {
    /// The metadata entries that make a checkpoint self-describing.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut meta = BTreeMap::new();
        // Plain data structs: serialising them cannot fail.
        meta.insert(
            META_CONFIG.to_owned(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        meta.insert(
            META_CLASSES.to_owned(),
            serde_json::to_string(self.classes.names()).unwrap_or_default(),
        );
        if let Some(ids) = self.classes.category_ids() {
            meta.insert(
                META_CATEGORY_IDS.to_owned(),
                serde_json::to_string(ids).unwrap_or_default(),
            );
        }
        if let Some(iteration) = self.iteration {
            meta.insert(META_ITERATION.to_owned(), iteration.to_string());
        }
        meta
    }

    /// Reads the metadata of the native checkpoint `path` (a `.bpk` or a checkpoint folder); the
    /// stored configuration is validated.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let file = model_file(path);
        if !file.exists() {
            return Err(checkpoint_error(&file, CheckpointProblem::NotFound));
        }
        let meta = checkpoint_metadata(&file)?;
        let entry = |key: &'static str| {
            meta.get(key)
                .ok_or_else(|| checkpoint_error(&file, CheckpointProblem::MissingMetadata(key)))
        };
        let bad = |key: &'static str, message: String| {
            checkpoint_error(&file, CheckpointProblem::BadMetadata { key, message })
        };
        let config: SsdConfig = serde_json::from_str(entry(META_CONFIG)?)
            .map_err(|e| bad(META_CONFIG, e.to_string()))?;
        config
            .validate()
            .map_err(|e| bad(META_CONFIG, e.to_string()))?;
        let names: Vec<String> = serde_json::from_str(entry(META_CLASSES)?)
            .map_err(|e| bad(META_CLASSES, e.to_string()))?;
        let mut classes = ClassList::new(names).map_err(|e| bad(META_CLASSES, e.to_string()))?;
        if let Some(text) = meta.get(META_CATEGORY_IDS) {
            let ids: Vec<u64> =
                serde_json::from_str(text).map_err(|e| bad(META_CATEGORY_IDS, e.to_string()))?;
            classes = classes
                .with_category_ids(ids)
                .map_err(|e| bad(META_CATEGORY_IDS, e.to_string()))?;
        }
        let iteration = meta
            .get(META_ITERATION)
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|e| bad(META_ITERATION, e.to_string()))?;
        Ok(Self {
            config,
            classes,
            iteration,
        })
    }
}

fn checkpoint_error(path: &Path, problem: CheckpointProblem) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_owned(),
        problem,
    }
}

/// The model file of `path`: a training checkpoint folder's [`MODEL_FILE`], else `path` itself.
pub fn model_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_owned()
    }
}

impl Ssd {
    /// Saves a self-describing checkpoint (weights plus `info` as metadata), atomically.
    ///
    /// `valid()` is applied first: it also folds a batch norm's pending running-statistics update
    /// into the weights (Burn keeps the last one per thread until read), which saving the
    /// autodiff module directly would lose.
    pub fn save_trained(&self, path: &Path, info: &CheckpointInfo) -> Result<(), ModelError> {
        use burn::module::Module;
        self.valid().save_checkpoint_with(path, &info.metadata())
    }
}

/// Checks that `classes` names every output of `config` but the background.
pub fn check_classes(
    path: &Path,
    config: &SsdConfig,
    classes: &ClassList,
) -> Result<(), ModelError> {
    if classes.num_classes_with_background() == config.num_classes {
        Ok(())
    } else {
        Err(ModelError::ClassCount {
            path: path.to_owned(),
            num_classes: config.num_classes,
            names: classes.len(),
        })
    }
}
