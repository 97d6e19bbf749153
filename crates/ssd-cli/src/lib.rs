//! The `ssd` command line, as a library so that tests (and other tools) drive training,
//! detection and evaluation the way the binary does.
//!
//! - [`train`]: the training loop (Caffe recipe, atomic checkpoints, resume, Ctrl-C, NaN stop,
//!   loss CSV and plot).
//! - [`detect`]: detection on image files (annotated copies, JSON lines) and over an image set.
//! - [`eval`]: VOC mAP of a trained model or of devkit result files.
//! - [`quickstart`]: synthetic data, a small model trained on it, its mAP and pictures.
//! - [`backend`]: `--backend flex|tch|wgpu` to a Burn device.
//!
//! Model and geometry logic never live here (see `ssd-model`, `ssd-core`).

pub mod backend;
pub mod batches;
pub mod detect;
pub mod eval;
pub mod model_io;
pub mod quickstart;
pub mod render;
pub mod train;
