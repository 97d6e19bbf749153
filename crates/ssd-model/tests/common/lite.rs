//! What `tools/make_lite_fixtures.py` computes, reproduced for Burn: torchvision's SSDLite at
//! width 0.25 (reduced tail, 6 classes) in `tests/fixtures/ssdlite_reduced/`, its 320x320 input,
//! targets and loss. The expected values were computed by PyTorch in float64; `f32_error.*`
//! entries say how far PyTorch's own float32 run lands from them.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use ssd_model::{
    BaseConfig, HostTensor, LoadMode, LoadReport, LossParts, MobileNetV3Base, MultiBoxLoss,
    PthLayout, Ssd, SsdConfig,
};

use super::parity::{hashed_unit, targets, values};

/// Batch of the fixture input.
pub const BATCH: usize = 2;
/// Input side.
pub const SIZE: usize = 320;
/// SSDLite320's priors.
pub const PRIORS: usize = 3234;
/// Classes of the fixture (background included).
pub const CLASSES: usize = 6;
/// Hard negatives per positive in the fixture's loss: every negative, so that no near-tie in the
/// mining order decides which priors a gradient reaches (the loss parity of the VGG fixture
/// covers the mining).
pub const NEG_POS_RATIO: f64 = 1000.0;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ssdlite_reduced")
        .join(name)
}

/// The fixture's network: SSDLite320 at width 0.25 (extras 128, 64, 64, 32).
pub fn reduced_config() -> SsdConfig {
    let mut config = SsdConfig::ssdlite320(CLASSES);
    config.base = BaseConfig::MobilenetV3(MobileNetV3Base {
        reduced_tail: true,
        width_mult: 0.25,
        extras: vec![128, 64, 64, 32],
    });
    config
}

/// A fixture state dict loaded into the reduced network, every tensor used.
pub fn load(device: &Device, file: &str) -> (Ssd, LoadReport) {
    let model = reduced_config().init(device).expect("valid config");
    let (model, report) = model
        .load_pytorch(&fixture(file), LoadMode::Full)
        .expect("torchvision's SSDLite keys load");
    assert_eq!(report.layout, PthLayout::TorchvisionSsdLite);
    (model, report)
}

pub fn input(device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(
        TensorData::new(
            hashed_unit(BATCH * 3 * SIZE * SIZE, 0),
            [BATCH, 3, SIZE, SIZE],
        ),
        device,
    )
}

/// The MultiBox loss of the fixture's targets.
pub fn fixture_loss(loc: Tensor<3>, conf: Tensor<3>, device: &Device) -> LossParts {
    let (labels, locations) = targets(CLASSES as i64, PRIORS);
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [BATCH, PRIORS]), device);
    let locations = Tensor::<3>::from_data(TensorData::new(locations, [BATCH, PRIORS, 4]), device);
    MultiBoxLoss {
        neg_pos_ratio: NEG_POS_RATIO,
    }
    .forward(loc, conf, labels, locations)
}

/// Relative errors of the localisation and confidence losses.
pub fn loss_errors(parts: &LossParts, expected: &BTreeMap<String, HostTensor>) -> (f32, f32) {
    let rel = |a: f32, b: f32| (a - b).abs() / b.abs();
    (
        rel(values(parts.loc.clone())[0], expected["loss_loc"].0[0]),
        rel(values(parts.conf.clone())[0], expected["loss_conf"].0[0]),
    )
}
