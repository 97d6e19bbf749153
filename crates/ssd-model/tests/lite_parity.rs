//! SSDLite parity with torchvision on Flex (float32): `tools/make_lite_fixtures.py` built SSDLite
//! on MobileNetV3-Large from torchvision's own modules (width 0.25, reduced tail, 6 classes; batch
//! norms with random scales, shifts and running statistics) and wrote its state dict, its raw head
//! outputs in evaluation and training mode for a fixed 320x320 input, its default boxes and the
//! MultiBox loss on fixed targets, computed in float64 (`tests/fixtures/ssdlite_reduced/`).
//!
//! Tolerances: outputs 1e-3 absolute (they reach 19; PyTorch's own float32 run lands 4e-4 from
//! the float64 values), default boxes 1e-6, losses 1e-5 relative. The SGD step is compared in
//! float64 (`lite_parity_f64.rs`): through twenty batch-normalised layers of random weights,
//! float32 gradients of either framework are only good to a few percent.

mod common;

use burn::tensor::Device;
use common::lite::{
    BATCH, CLASSES, PRIORS, fixture, fixture_loss, input, load, loss_errors, reduced_config,
};
use common::parity::{every_7th, max_diff};
use ssd_model::{LoadMode, PthLayout, SsdConfig, read_pth_tensors};

/// Largest accepted difference of a raw output from the float64 reference.
const OUTPUT_TOLERANCE: f32 = 1e-3;

#[test]
fn the_configuration_is_read_from_the_state_dict() {
    let entries = ssd_model::pth_entries(&fixture("model.pth")).expect("keys");
    let config = SsdConfig::from_state_dict(&entries).expect("an SSDLite configuration");
    assert_eq!(config, reduced_config());
}

#[test]
fn default_boxes_are_torchvisions() {
    let expected = read_pth_tensors(&fixture("expected.pth")).expect("expected");
    let (want, shape) = &expected["priors"];
    assert_eq!(shape, &vec![PRIORS, 4]);
    let ours: Vec<f32> = reduced_config()
        .priors
        .priors()
        .expect("valid")
        .iter()
        .flat_map(|b| [b.cx, b.cy, b.w, b.h])
        .collect();
    let d = max_diff(&ours, want);
    assert!(d < 1e-6, "default boxes differ by {d:e}");
}

#[test]
fn evaluation_outputs_match_torchvision() {
    let device = Device::flex();
    let (model, _) = load(&device, "model.pth");
    let expected = read_pth_tensors(&fixture("expected.pth")).expect("expected");
    let (loc, conf) = model.forward(input(&device));
    assert_eq!(loc.dims(), [BATCH, PRIORS, 4]);
    assert_eq!(conf.dims(), [BATCH, PRIORS, CLASSES]);
    let loc_diff = max_diff(&every_7th(loc), &expected["loc_sub"].0);
    let conf_diff = max_diff(&every_7th(conf), &expected["conf_sub"].0);
    eprintln!(
        "evaluation: loc {loc_diff:e}, conf {conf_diff:e}; PyTorch float32: loc {:e}, conf {:e}",
        expected["f32_error.loc"].0[0], expected["f32_error.conf"].0[0]
    );
    assert!(
        loc_diff < OUTPUT_TOLERANCE && conf_diff < OUTPUT_TOLERANCE,
        "loc {loc_diff:e}, conf {conf_diff:e}"
    );
}

#[test]
fn training_outputs_and_loss_match_torchvision() {
    let device = Device::flex().autodiff();
    let (model, _) = load(&device, "model.pth");
    let expected = read_pth_tensors(&fixture("expected.pth")).expect("expected");
    let (loc, conf) = model.forward(input(&device));
    let loc_diff = max_diff(&every_7th(loc.clone()), &expected["train_loc_sub"].0);
    let conf_diff = max_diff(&every_7th(conf.clone()), &expected["train_conf_sub"].0);
    let (loss_loc, loss_conf) = loss_errors(&fixture_loss(loc, conf, &device), &expected);
    eprintln!(
        "training: loc {loc_diff:e}, conf {conf_diff:e}, loss rel {loss_loc:e} / {loss_conf:e}; \
         PyTorch float32: loc {:e}, conf {:e}",
        expected["f32_error.train_loc"].0[0], expected["f32_error.train_conf"].0[0]
    );
    assert!(
        loc_diff < OUTPUT_TOLERANCE && conf_diff < OUTPUT_TOLERANCE,
        "loc {loc_diff:e}, conf {conf_diff:e}"
    );
    assert!(
        loss_loc < 1e-5 && loss_conf < 1e-5,
        "{loss_loc:e} / {loss_conf:e}"
    );
}

#[test]
fn an_imagenet_mobilenet_fills_the_backbone_only() {
    let device = Device::flex();
    let fresh = reduced_config().init(&device).expect("valid");
    let before = fresh.named_values();
    let (model, report) = fresh
        .load_pytorch(&fixture("backbone.pth"), LoadMode::Backbone)
        .expect("the ImageNet layout loads as a backbone");
    assert_eq!(report.layout, PthLayout::TorchvisionMobileNetV3);
    assert!(report.ignored.iter().any(|k| k.starts_with("classifier.")));
    // The fixture's MobileNetV3 is the one inside model.pth: the backbones agree tensor for
    // tensor, and every backbone tensor was filled.
    let detector = load(&device, "model.pth").0.named_values();
    let ours = model.named_values();
    let backbone: Vec<&String> = ours.keys().filter(|n| n.starts_with("backbone.")).collect();
    assert_eq!(report.loaded.iter().collect::<Vec<_>>(), backbone);
    for name in backbone {
        assert_eq!(ours[name], detector[name], "{name}");
    }
    // Extras and heads keep their initial values.
    for (name, v) in &ours {
        if !name.starts_with("backbone.") {
            assert_eq!(v, &before[name], "{name}");
        }
    }
}
