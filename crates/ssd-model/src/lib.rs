//! The SSD network on Burn: a base network, extra layers and multibox heads — VGG16 with L2Norm
//! (SSD300, SSD512 and a small CPU preset), MobileNetV3-Large with depthwise-separable heads
//! (torchvision's SSDLite320) and ResNet-50 (NVIDIA's SSD300 v1.1) —, the MultiBox loss, post-processing to detections, PyTorch
//! weight import, native checkpoints ([`checkpoint`]) and a [`Detector`] that loads any
//! supported weights file and turns images into detections.
//!
//! To detect objects (the `detect` example: `cargo run --release -p ssd-model --example detect
//! -- WEIGHTS IMAGE`):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = burn::tensor::Device::default();
//! // A checkpoint of `ssd train` (`.bpk` or folder) or an amdegroot/torchvision/lufficc/NVIDIA `.pth`.
//! let detector = ssd_model::Detector::load("ssd300_mAP_77.43_v2.pth", &device)?;
//! let image = ssd_data::load_rgb("street.jpg".as_ref())?;
//! let found = detector.detect(std::slice::from_ref(&image))?;
//! let report = detector.describe("street.jpg", [image.width(), image.height()], &found[0]);
//! println!("{}", serde_json::to_string(&report)?);
//! # Ok(())
//! # }
//! ```
//!
//! The network itself:
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

pub mod checkpoint;
mod config;
mod detector;
pub mod engine;
mod error;
mod lite;
mod loss;
mod model;
mod norm;
pub mod onnx;
#[cfg(feature = "onnxruntime")]
mod onnxruntime;
mod postprocess;
pub mod reduce;
mod resnet;
mod tensors;
mod weights;

pub use checkpoint::{CheckpointInfo, MODEL_FILE};
pub use config::{
    BaseConfig, ExtraConv, MobileNetV3Base, PRESETS, ResNetBase, SsdConfig, VggBase, VggConfig,
};
pub use detector::{Detector, ImageDetections, NamedDetection};
pub use engine::{Engine, EngineKind, OrtOptions, OrtProvider, Precision};
pub use error::{CheckpointProblem, ConfigError, LoadProblem, ModelError, StateDictError};
pub use lite::{
    ConvBn, ExtraBlock, InvertedResidual, LITE_BN_EPS, LITE_BN_MOMENTUM, LiteSsd, MobileNetV3,
    PredictionBlock, SqueezeExcitation,
};
pub use loss::{LossParts, MultiBoxLoss, hard_negatives};
pub use model::{L2NORM_EPS, L2Norm, Ssd, VggSsd};
pub use norm::BatchNorm;
#[cfg(feature = "onnxruntime")]
pub use onnxruntime::loaded_runtime;
pub use postprocess::{Detection, PostProcessConfig, PostProcessor};
pub use resnet::{Bottleneck, RESNET_BN_EPS, RESNET_BN_MOMENTUM, ResNetSsd};
pub use tensors::{HostValues, NamedTensor, write_safetensors};
pub use weights::{
    HostTensor, LoadMode, LoadReport, MAX_CLASSES, PthLayout, checkpoint_metadata, pth_entries,
    read_pth_tensors,
};
