//! What the training tests share: a tiny network, tiny synthetic data and its recipe.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ssd_data::{ClassList, SyntheticConfig, write_synthetic};
use ssd_model::SsdConfig;
use ssd_train::{TrainConfig, TrainSettings};

pub(crate) fn tiny_model(classes: &ClassList) -> SsdConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_model.json");
    let text = std::fs::read_to_string(&path).expect("tiny model fixture");
    let mut config: SsdConfig = serde_json::from_str(&text).expect("tiny model");
    config.num_classes = classes.num_classes_with_background();
    config
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-workflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Small images with one to two large objects: learnable by the tiny model in a few hundred
/// iterations.
pub(crate) fn tiny_data(root: &Path, train_images: usize, test_images: usize) {
    let config = SyntheticConfig {
        seed: 3,
        ..SyntheticConfig::large_objects(train_images, test_images)
    };
    write_synthetic(root, &config).expect("synthetic data");
}

pub(crate) fn tiny_config(data: &Path, results: &Path, iterations: u64) -> TrainConfig {
    TrainConfig {
        dataroot: vec![data.to_owned()],
        batch_size: 8,
        iterations,
        lr: 0.005,
        clip_grad: 5.0,
        lr_decay: vec![iterations * 3 / 4],
        warmup: 20.min(iterations),
        expand_ratio: 1.0,
        workers: 2,
        seed: 11,
        save_every: 1_000_000,
        log_every: 50,
        results: results.to_owned(),
        model_save_name: "tiny".to_owned(),
        ..TrainConfig::default()
    }
}

pub(crate) fn settings(config: TrainConfig, resume: Option<&Path>) -> TrainSettings {
    let classes = ClassList::from_file(&config.dataroot[0].join("classes.txt")).expect("classes");
    TrainSettings {
        model: tiny_model(&classes),
        classes,
        config,
        devices: vec![Device::flex()],
        resume: resume.map(Path::to_owned),
        overwrite: false,
        dataset: None,
    }
}
