//! The SSD training engine: a library, so that any program (the `ssd` binary among them) trains
//! the way `ssd train` does.
//!
//! - [`TrainConfig`]: the recipe (data, the Caffe optimizer settings, output), plain data saved
//!   with every checkpoint and range-checked by [`TrainConfig::validate`]; [`TrainSettings`]
//!   adds the typed values (the Burn devices, the network's `SsdConfig`, the class list, a
//!   checkpoint to resume from).
//! - [`Trainer`]: [`Trainer::step`] runs one iteration (batch, MultiBox loss, backward, global
//!   gradient-norm clipping on the device, SGD with the Caffe bias group, step decay and warmup);
//!   [`Trainer::run`] runs to the end under an [`Observer`] that sees each [`StepStats`] and may
//!   ask to stop. Checkpoints ([`checkpoint`]) are written atomically every `save-every`
//!   iterations; resuming restores weights, momentum and iteration, and the data order and the
//!   learning rate follow from the seed and the iteration, so `N + N` iterations with a resume
//!   in between give the weights of `2N`. A loss, gradient norm or weight that stops being a
//!   number ends the run before anything bad is written, naming the last good checkpoint.
//! - [`LossLog`]: the loss CSV of a run, one row per iteration, continued by a resumed run.
//!
//! Evaluating what a run trained is `ssd-evaluation`'s work (the example below uses it).
//!
//! This crate prints nothing, installs no signal handler and never exits the process: progress,
//! logs and Ctrl-C belong to the observer.
//!
//! Training the small preset on a synthetic dataset and evaluating it (the `train_synthetic`
//! example: `cargo run --release -p ssd-train --example train_synthetic -- OUT`):
//!
//! ```no_run
//! use std::sync::Arc;
//! use ssd_data::{ClassList, SyntheticConfig, DetectionDataset, write_synthetic};
//! use ssd_model::{Detector, SsdConfig};
//! use ssd_evaluation::{EvalOptions, evaluate};
//! use ssd_train::{Quiet, TrainConfig, TrainSettings, Trainer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = std::path::PathBuf::from("out/data");
//! write_synthetic(&data, &SyntheticConfig::large_objects(400, 100))?;
//! let classes = ClassList::from_file(&data.join("classes.txt"))?;
//! let device = burn::tensor::Device::default();
//! let settings = TrainSettings {
//!     config: TrainConfig {
//!         dataroot: vec![data.clone()],
//!         batch_size: 8,
//!         iterations: 300,
//!         lr: 0.01,
//!         clip_grad: 5.0,
//!         use_augment: false,
//!         lr_decay: vec![250],
//!         results: "out".into(),
//!         model_save_name: "small".into(),
//!         ..TrainConfig::default()
//!     },
//!     model: SsdConfig::small(classes.num_classes_with_background()),
//!     classes: classes.clone(),
//!     devices: vec![device.clone()],
//!     resume: None,
//!     overwrite: true,
//!     dataset: None,
//! };
//! let outcome = Trainer::new(settings)?.run(&mut Quiet)?;
//! let detector = Detector::load(&outcome.model, &device)?;
//! let test = Arc::new(DetectionDataset::open(&[data], "test", classes)?);
//! let report = evaluate(&detector, &test, &EvalOptions::default(), &Default::default())?;
//! println!("{}", report.table());
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
mod dump;
mod error;
mod loss_log;
mod optim;
mod resolve;
mod run_lock;
mod settings;
mod trainer;

pub use checkpoint::{TrainState, read_state};
pub use error::TrainError;
pub use loss_log::{LossLog, LossPoint};
pub use optim::{bias_group, build_optimizer, clip_grads, grad_norm, lr_schedule};
#[cfg(feature = "clap")]
pub use resolve::show_defaults;
pub use resolve::{Recipe, ResolvedRun, RunRequest, read_settings_file};
pub use settings::{LrSchedule, TrainConfig, TrainOverrides, TrainPrecision, TrainSettings};
pub use trainer::{Control, Observer, Quiet, Start, StepStats, TrainOutcome, Trainer};
