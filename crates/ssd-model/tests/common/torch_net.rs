//! The fixtures of the networks on other bases than VGG, and the checks they share:
//!
//! - `tests/fixtures/ssdlite_reduced/` (`tools/make_lite_fixtures.py`): torchvision's SSDLite on
//!   MobileNetV3-Large built from torchvision's own modules at width 0.25 (reduced tail, 6
//!   classes), 320x320 input;
//! - `tests/fixtures/resnet_reduced/` (`tools/make_resnet_fixtures.py`): the written reference of
//!   NVIDIA's SSD300 v1.1 at stem width 16 (blocks 2, 2, 2, narrower extras, 6 classes), 300x300
//!   input, saved as NVIDIA's training script saves a checkpoint.
//!
//! Each holds the state dict, raw head outputs in evaluation and training mode (in ssd-model's
//! layout), the default boxes and the MultiBox loss on fixed targets, computed in float64, and
//! `f32_error.*`: how far PyTorch's own float32 run lands from them; `updated.pth` is the state
//! after one SGD step.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ssd_model::{
    BaseConfig, ExtraConv, HostTensor, LoadMode, LoadReport, LossParts, MobileNetV3Base,
    MultiBoxLoss, PthLayout, ResNetBase, Ssd, SsdConfig, read_pth_tensors,
};

use super::parity::{crate_dir, every_7th, hashed_unit, max_diff, targets, values};

/// Batch of the fixture input.
pub const BATCH: usize = 2;
/// Classes of the fixtures (background included).
pub const CLASSES: usize = 6;

/// One fixture network.
#[derive(Clone, Copy)]
pub struct TorchNet {
    /// Folder under `tests/fixtures`, or an absolute path.
    pub dir: &'static str,
    /// The network the fixture was built with; `None`: read from `model.pth`'s shapes.
    pub config: Option<fn() -> SsdConfig>,
    /// Input side.
    pub size: usize,
    /// Priors.
    pub priors: usize,
    /// Hard negatives per positive in the fixture's loss.
    pub neg_pos_ratio: f64,
    /// The layout `model.pth` is detected as.
    pub layout: PthLayout,
    /// Weight decay of the fixture's SGD step.
    pub weight_decay: f32,
    /// What the ImageNet backbone file of the fixture is detected as, and its keys left out.
    pub backbone: (PthLayout, &'static [&'static str]),
    /// Prefixes of the base network's parameters.
    pub base: &'static [&'static str],
}

/// SSDLite320 at width 0.25. Every negative counts in its loss (no hard-negative cut), so that
/// no near-tie in the mining order decides which priors a gradient reaches (the loss parity of
/// the VGG fixture covers the mining).
pub const LITE: TorchNet = TorchNet {
    dir: "ssdlite_reduced",
    config: Some(lite_config),
    size: 320,
    priors: 3234,
    neg_pos_ratio: 1000.0,
    layout: PthLayout::TorchvisionSsdLite,
    weight_decay: 4e-5,
    backbone: (PthLayout::TorchvisionMobileNetV3, &["classifier."]),
    base: &["backbone."],
};

/// NVIDIA's SSD300 at stem width 16, with the paper's 3:1 hard negatives.
pub const RESNET: TorchNet = TorchNet {
    dir: "resnet_reduced",
    config: Some(resnet_config),
    size: 300,
    priors: 8732,
    neg_pos_ratio: 3.0,
    layout: PthLayout::NvidiaResnet,
    weight_decay: 5e-4,
    backbone: (PthLayout::TorchvisionResnet, &["layer4.", "fc."]),
    base: &["stem.", "layers."],
};

fn lite_config() -> SsdConfig {
    let mut config = SsdConfig::ssdlite320(CLASSES);
    config.base = BaseConfig::MobilenetV3(MobileNetV3Base {
        reduced_tail: true,
        width_mult: 0.25,
        extras: vec![128, 64, 64, 32],
    });
    config
}

fn resnet_config() -> SsdConfig {
    let mut config = SsdConfig::ssd300_resnet50(CLASSES);
    let pair = |mid, out, stride, padding| {
        [
            ExtraConv::new(mid, 1, 1, 0),
            ExtraConv::new(out, 3, stride, padding),
        ]
    };
    config.base = BaseConfig::Resnet(ResNetBase {
        width: 16,
        blocks: vec![2, 2, 2],
        extras: [
            pair(32, 64, 2, 1),
            pair(32, 64, 2, 1),
            pair(16, 32, 2, 1),
            pair(16, 32, 1, 0),
            pair(16, 32, 1, 0),
        ]
        .concat(),
    });
    config
}

impl TorchNet {
    pub fn fixture(&self, name: &str) -> PathBuf {
        crate_dir().join("tests/fixtures").join(self.dir).join(name)
    }

    pub fn reduced_config(&self) -> SsdConfig {
        match self.config {
            Some(config) => config(),
            None => {
                let entries = ssd_model::pth_entries(&self.fixture("model.pth")).expect("keys");
                SsdConfig::from_state_dict(&entries).expect("a configuration")
            }
        }
    }

    /// The same network written at full size by the fixture script's `--full DIR` into `dir`
    /// (an absolute path), its configuration read from the file.
    pub fn full_size(&self, dir: String) -> TorchNet {
        TorchNet {
            dir: Box::leak(dir.into_boxed_str()),
            config: None,
            ..*self
        }
    }

    /// Classes of the fixture's network, background included.
    pub fn classes(&self) -> usize {
        self.reduced_config().num_classes
    }

    pub fn expected(&self) -> BTreeMap<String, HostTensor> {
        read_pth_tensors(&self.fixture("expected.pth")).expect("expected values")
    }

    /// A fixture state dict loaded into the reduced network, every tensor used.
    pub fn load(&self, device: &Device, file: &str) -> (Ssd, LoadReport) {
        let model = self.reduced_config().init(device).expect("valid config");
        let (model, report) = model
            .load_pytorch(&self.fixture(file), LoadMode::Full)
            .unwrap_or_else(|e| panic!("{}/{file} loads: {e}", self.dir));
        if file == "model.pth" {
            assert_eq!(report.layout, self.layout);
        }
        (model, report)
    }

    pub fn input(&self, device: &Device) -> Tensor<4> {
        let s = self.size;
        Tensor::<4>::from_data(
            TensorData::new(hashed_unit(BATCH * 3 * s * s, 0), [BATCH, 3, s, s]),
            device,
        )
    }

    /// The MultiBox loss of the fixture's targets.
    pub fn loss(&self, loc: Tensor<3>, conf: Tensor<3>, device: &Device) -> LossParts {
        let p = self.priors;
        let (labels, locations) = targets(self.classes() as i64, p);
        let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [BATCH, p]), device);
        let locations = Tensor::<3>::from_data(TensorData::new(locations, [BATCH, p, 4]), device);
        MultiBoxLoss {
            neg_pos_ratio: self.neg_pos_ratio,
        }
        .forward(loc, conf, labels, locations)
    }

    /// `model.pth` on `device` in evaluation mode: the largest differences of `loc` and `conf`
    /// from the reference.
    pub fn evaluation_diff(&self, device: &Device) -> (f32, f32) {
        let (model, _) = self.load(device, "model.pth");
        let expected = self.expected();
        let (loc, conf) = model.forward(self.input(device));
        assert_eq!(loc.dims(), [BATCH, self.priors, 4]);
        assert_eq!(conf.dims(), [BATCH, self.priors, self.classes()]);
        (
            max_diff(&every_7th(loc), &expected["loc_sub"].0),
            max_diff(&every_7th(conf), &expected["conf_sub"].0),
        )
    }

    /// `model.pth` on `device` (an autodiff one), its outputs in training mode and their
    /// distance from the reference, the loss and its relative errors.
    pub fn training_pass(&self, device: &Device) -> TrainingPass {
        let (model, report) = self.load(device, "model.pth");
        let expected = self.expected();
        let (loc, conf) = model.forward(self.input(device));
        assert_eq!(conf.dims(), [BATCH, self.priors, self.classes()]);
        let loc_diff = max_diff(&every_7th(loc.clone()), &expected["train_loc_sub"].0);
        let conf_diff = max_diff(&every_7th(conf.clone()), &expected["train_conf_sub"].0);
        let loss = self.loss(loc, conf, device);
        let rel = |a: f32, b: f32| (a - b).abs() / b.abs();
        let loss_errors = (
            rel(values(loss.loc.clone())[0], expected["loss_loc"].0[0]),
            rel(values(loss.conf.clone())[0], expected["loss_conf"].0[0]),
        );
        TrainingPass {
            model,
            report,
            loss,
            output_diff: (loc_diff, conf_diff),
            loss_errors,
        }
    }

    /// One SGD step (lr 1e-2, momentum 0.9, the fixture's weight decay) on the training pass's
    /// loss; every tensor after it, running statistics included.
    pub fn sgd_step(&self, pass: TrainingPass) -> BTreeMap<String, Vec<f32>> {
        let grads = GradientsParams::from_grads(pass.loss.total(1.0).backward(), &pass.model);
        let mut optimizer = SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
            ))
            .with_weight_decay(Some(WeightDecayConfig::new(self.weight_decay)))
            .init();
        optimizer
            .step(1e-2, pass.model, grads)
            .valid()
            .named_values()
    }
}

/// What [`TorchNet::training_pass`] computed.
pub struct TrainingPass {
    pub model: Ssd,
    pub report: LoadReport,
    pub loss: LossParts,
    pub output_diff: (f32, f32),
    pub loss_errors: (f32, f32),
}
