//! The SSD network on Burn: VGG16 base with L2Norm, extra layers and multibox heads (SSD300,
//! SSD512 and a small CPU preset), the MultiBox loss, post-processing to detections, PyTorch
//! weight import and native checkpoints.
//!
//! Like every library crate of `ssd`, it enables no Burn backend: callers pass a `Device`.
//!
//! Shapes: images `[N, 3, S, S]` (RGB minus the mean, `S` = 300 for SSD300), `loc [N, P, 4]`
//! (encoded offsets, variances 0.1/0.2), `conf [N, P, C]` (logits, class 0 background), `P`
//! priors in [`ssd_core::PriorConfig::priors`] order.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use ssd_model::SsdConfig;
//!
//! # fn main() -> Result<(), ssd_model::ModelError> {
//! let device = Device::default();
//! let config = SsdConfig::small(6); // 5 classes + background
//! let model = config.init(&device)?;
//! let side = config.input_size(); // 128 for the small preset
//! let images = Tensor::<4>::zeros([2, 3, side, side], &device);
//! let (loc, conf) = model.forward(images);
//! assert_eq!(loc.dims(), [2, config.num_priors(), 4]);
//! assert_eq!(conf.dims(), [2, config.num_priors(), 6]);
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod loss;
mod model;
mod postprocess;
pub mod reduce;
mod weights;

pub use config::{ExtraConv, SsdConfig, VggConfig};
pub use error::ModelError;
pub use loss::{LossParts, MultiBoxLoss};
pub use model::{L2NORM_EPS, L2Norm, Ssd};
pub use postprocess::{Detection, PostProcessConfig, PostProcessor};
pub use weights::{
    HostTensor, LoadMode, LoadReport, PthLayout, checkpoint_metadata, pth_entries, read_pth_tensors,
};
