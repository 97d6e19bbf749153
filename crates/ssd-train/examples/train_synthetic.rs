//! Writes a small synthetic VOC-format dataset, trains the small SSD preset on it for a few
//! hundred iterations and prints the VOC07 mAP on its test split:
//! `cargo run --release -p ssd-train --example train_synthetic -- OUT [ITERATIONS]`.

use std::sync::Arc;

use ssd_data::{ClassList, DetectionDataset, SyntheticConfig, write_synthetic};
use ssd_evaluation::{EvalOptions, evaluate};
use ssd_model::{Detector, SsdConfig};
use ssd_train::{Quiet, TrainConfig, TrainSettings, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: OUT [ITERATIONS]")?);
    let iterations: u64 = std::env::args().nth(2).map_or(Ok(300), |n| n.parse())?;
    let data = out.join("data");
    write_synthetic(&data, &SyntheticConfig::large_objects(400, 100))?;
    let classes = ClassList::from_file(&data.join("classes.txt"))?;
    let device = burn::tensor::Device::flex();
    let config = TrainConfig {
        dataroot: vec![data.clone()],
        batch_size: 8,
        iterations,
        lr: 0.01,
        clip_grad: 5.0,
        warmup: iterations / 10,
        lr_decay: vec![iterations * 4 / 5],
        use_augment: false,
        save_every: iterations,
        model_save_name: "small".into(),
        results: out.clone(),
        ..TrainConfig::default()
    };
    let model = SsdConfig::small(classes.num_classes_with_background());
    let settings = TrainSettings {
        config,
        model,
        classes: classes.clone(),
        devices: vec![device.clone()],
        resume: None,
        overwrite: true,
        dataset: None,
    };
    let outcome = Trainer::new(settings)?.run(&mut Quiet)?;
    let detector = Detector::load(&outcome.model, &device)?;
    let test = Arc::new(DetectionDataset::open(&[data], "test", classes)?);
    let report = evaluate(
        &detector,
        &test,
        &EvalOptions::default(),
        &Default::default(),
    )?;
    print!("{}", report.table());
    println!(
        "VOC07 mAP {:.4} after {iterations} iterations",
        report.headline().unwrap_or(0.0)
    );
    Ok(())
}
