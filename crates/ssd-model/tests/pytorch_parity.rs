//! Parity with PyTorch on Flex: `tools/make_model_fixtures.py` (our own PyTorch code, amdegroot's
//! layout, seeded random init) wrote an SSD300-topology network with narrow channels
//! (`tests/fixtures/amdegroot_reduced/`): its state dict, its outputs for a fixed input, the
//! MultiBox loss on fixed targets and the state dict after one SGD step. Tolerances: outputs 1e-4
//! absolute, loss 1e-5 relative, updated weights 1e-5 absolute. The same check runs on tch and
//! wgpu in the workspace's `tests/backends.rs`.

mod common;

use std::path::Path;

use burn::tensor::Device;
use common::parity::{conv_params, fixture, load, reduced_config, run_parity};
use ssd_model::LoadMode;

#[test]
fn forward_loss_and_sgd_step_match_pytorch_on_flex() {
    let p = run_parity(&Device::flex().autodiff());
    eprintln!("{p:?}");
    assert!(p.loc_diff < 1e-4 && p.conf_diff < 1e-4, "{p:?}");
    assert!(p.loss_loc_rel < 1e-5 && p.loss_conf_rel < 1e-5, "{p:?}");
    assert!(p.weight_diff() < 1e-5, "{p:?}");
}

/// The real SSD300 (VGG16 widths, 21 classes, ~100 MB of weights): generate with
/// `python3 tools/make_model_fixtures.py --full DIR`, then run with `SSD_FULL_PARITY_DIR=DIR
/// cargo test --workspace --test pytorch_parity -- --ignored`.
#[test]
#[ignore = "needs the full-size fixture from tools/make_model_fixtures.py --full (not committed: ~100 MB)"]
fn full_ssd300_matches_pytorch_on_flex() {
    let dir = std::env::var_os("SSD_FULL_PARITY_DIR").expect("set SSD_FULL_PARITY_DIR");
    let p = common::parity::run_parity_in(
        Path::new(&dir),
        &ssd_model::SsdConfig::ssd300(21),
        &Device::flex().autodiff(),
        common::parity::Step::Sgd,
    );
    eprintln!("{p:?}");
    assert!(p.loc_diff < 1e-4 && p.conf_diff < 1e-4, "{p:?}");
    assert!(p.loss_loc_rel < 1e-5 && p.loss_conf_rel < 1e-5, "{p:?}");
    assert!(p.weight_diff() < 1e-5, "{p:?}");
}

/// torchvision's real `ssd300_vgg16` with random weights (from the same `--full` run): loaded
/// from its own layout, our forward gives its raw head outputs within 1e-4.
#[test]
#[ignore = "needs the full-size fixture from tools/make_model_fixtures.py --full (not committed: ~100 MB)"]
fn torchvision_ssd300_weights_give_torchvisions_outputs() {
    let dir = std::env::var_os("SSD_FULL_PARITY_DIR").expect("set SSD_FULL_PARITY_DIR");
    let dir = Path::new(&dir);
    let device = Device::flex();
    let model = ssd_model::SsdConfig::ssd300(21)
        .init(&device)
        .expect("valid");
    let (model, report) = model
        .load_pytorch(&dir.join("torchvision.pth"), LoadMode::Full)
        .expect("torchvision layout loads");
    assert_eq!(report.layout, ssd_model::PthLayout::Torchvision);
    let expected =
        ssd_model::read_pth_tensors(&dir.join("torchvision_expected.pth")).expect("outputs");
    let input = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(
            common::parity::hashed_unit(2 * 3 * 300 * 300, 0),
            [2, 3, 300, 300],
        ),
        &device,
    );
    let (loc, conf) = model.forward(input);
    let loc_diff =
        common::parity::max_diff(&common::parity::every_7th(loc), &expected["loc_sub"].0);
    let conf_diff =
        common::parity::max_diff(&common::parity::every_7th(conf), &expected["conf_sub"].0);
    eprintln!("torchvision: loc {loc_diff:e}, conf {conf_diff:e}");
    assert!(
        loc_diff < 1e-4 && conf_diff < 1e-4,
        "loc {loc_diff:e}, conf {conf_diff:e}"
    );
}

/// torchvision's ImageNet `vgg16` (random weights, same `--full` run) as a backbone: conv1-conv5
/// copied, fc6/fc7 decimated into conv6/conv7 exactly as torch indexing does it in the script.
#[test]
#[ignore = "needs the full-size fixture from tools/make_model_fixtures.py --full (not committed: ~550 MB)"]
fn torchvision_vgg16_backbone_is_decimated_like_the_paper() {
    let dir = std::env::var_os("SSD_FULL_PARITY_DIR").expect("set SSD_FULL_PARITY_DIR");
    let dir = Path::new(&dir);
    let model = ssd_model::SsdConfig::ssd300(21)
        .init(&Device::flex())
        .expect("valid");
    let (model, report) = model
        .load_pytorch(&dir.join("vgg16.pth"), LoadMode::Backbone)
        .expect("vgg16 loads as a backbone");
    assert_eq!(report.layout, ssd_model::PthLayout::TorchvisionVgg16);
    let expected = ssd_model::read_pth_tensors(&dir.join("vgg16_expected.pth")).expect("expected");
    let params: std::collections::BTreeMap<String, Vec<f32>> =
        conv_params(&model).into_iter().collect();
    for (ours, theirs) in [
        ("vgg.0.weight", "conv1_1.weight"),
        ("vgg.12.weight", "conv5_3.weight"),
        ("vgg.13.weight", "conv6.weight"),
        ("vgg.13.bias", "conv6.bias"),
        ("vgg.14.weight", "conv7.weight"),
        ("vgg.14.bias", "conv7.bias"),
    ] {
        assert_eq!(params[ours], expected[theirs].0, "{ours} vs {theirs}");
    }
}

/// amdegroot's `vgg16_reducedfc.pth` layout (`0.weight` .. `33.bias`, the fixture's VGG part):
/// loads as a backbone into exactly the VGG weights of the full file; the rest keeps its init.
#[test]
fn reducedfc_backbone_loads_the_vgg_part() {
    let device = Device::flex();
    let full = load(&device, "model.pth");
    let fresh = reduced_config(6).init(&device).expect("valid");
    let (backbone, report) = fresh
        .load_pytorch(&fixture("reducedfc.pth"), LoadMode::Backbone)
        .expect("reducedfc loads");
    assert_eq!(report.layout, ssd_model::PthLayout::AmdegrootReducedFc);
    assert_eq!(report.loaded.len(), 30);
    for ((name, a), (_, b)) in conv_params(&full).into_iter().zip(conv_params(&backbone)) {
        if name.starts_with("vgg.") {
            assert_eq!(a, b, "{name}");
        } else {
            assert_ne!(a, b, "{name} should keep its initial value");
        }
    }
    // As a full model it is refused: it has no heads.
    let fresh = reduced_config(6).init(&device).expect("valid");
    let err = fresh
        .load_pytorch(&fixture("reducedfc.pth"), LoadMode::Full)
        .expect_err("backbone only");
    assert!(err.to_string().contains("backbone"), "{err}");
}

#[test]
fn wrong_shapes_and_missing_tensors_are_named() {
    let device = Device::flex();
    // Another class count: every conf head has the wrong shape.
    let err = reduced_config(21)
        .init(&device)
        .expect("valid")
        .load_pytorch(&fixture("model.pth"), LoadMode::Full)
        .expect_err("conf heads do not fit");
    let message = err.to_string();
    assert!(
        message.contains(
            "conf.0.weight -> conf.0.weight: expected shape [84, 32, 3, 3], found [24, 32, 3, 3]"
        ),
        "{message}"
    );
    assert!(message.contains("model.pth"), "{message}");
    // A wider fc: conv6/conv7 and everything after them mismatch.
    let mut config = reduced_config(6);
    config.vgg_base_mut().expect("VGG").vgg.fc_channels = 128;
    let err = config
        .init(&device)
        .expect("valid")
        .load_pytorch(&fixture("model.pth"), LoadMode::Full)
        .expect_err("fc differs");
    assert!(
        err.to_string().contains(
            "vgg.31.weight -> vgg.13.weight: expected shape [128, 32, 3, 3], found [64, 32, 3, 3]"
        ),
        "{err}"
    );
    // A full SSD file is not a backbone, and a backbone load only needs the VGG part.
    let model = reduced_config(6).init(&device).expect("valid");
    let (_, report) = model
        .load_pytorch(&fixture("model.pth"), LoadMode::Backbone)
        .expect("VGG part loads");
    assert!(report.loaded.len() > 30);
    // Not a PyTorch file at all.
    let err = reduced_config(6)
        .init(&device)
        .expect("valid")
        .load_pytorch(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("Cargo.toml")
                .as_path(),
            LoadMode::Full,
        )
        .expect_err("not a pth");
    assert!(err.to_string().contains("Cargo.toml"), "{err}");
}

#[test]
fn native_checkpoints_round_trip() {
    let device = Device::flex();
    let model = load(&device, "model.pth");
    let path = std::env::temp_dir().join(format!("ssd-model-ckpt-{}.bpk", std::process::id()));
    model.save_checkpoint(&path).expect("save");
    let fresh = reduced_config(6).init(&device).expect("valid");
    let restored = fresh.load_checkpoint(&path).expect("load");
    for ((name, a), (_, b)) in conv_params(&model).into_iter().zip(conv_params(&restored)) {
        assert_eq!(a, b, "{name}");
    }
    // A checkpoint of another configuration does not load.
    let other = reduced_config(21).init(&device).expect("valid");
    assert!(other.load_checkpoint(&path).is_err());
    std::fs::remove_file(path).ok();
}
