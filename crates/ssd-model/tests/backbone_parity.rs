//! Parity of the networks on MobileNetV3 and ResNet with their PyTorch references on Flex
//! (float32), from the fixtures of `common::torch_net`: torchvision's own SSDLite modules
//! (`tools/make_lite_fixtures.py`) and the written reference of NVIDIA's SSD300 v1.1
//! (`tools/make_resnet_fixtures.py`), random weights with batch norms of random scales, shifts and
//! running statistics, expected values computed in float64.
//!
//! Tolerances: outputs 1e-4 absolute (measured: SSDLite 1.5e-7 in evaluation mode and 1.4e-5 in
//! training mode, ResNet 9e-6 in evaluation mode, where PyTorch's own float32 run is as far; in
//! training mode, where PyTorch's float32 run is farther than that from its float64 result, twice
//! PyTorch's distance: ResNet 9e-4 against PyTorch's 1.1e-3), default boxes 1e-6, losses 1e-5
//! relative. After one SGD step the weights are within twice the distance of
//! PyTorch's own float32 run from the float64 result (recorded in each fixture: gradients summed
//! over tens of thousands of products per weight through twenty-odd layers with batch statistics
//! lose digits that the VGG fixture's 1e-5 assumes). What is computed is checked exactly in
//! float64 (`backbone_parity_f64.rs`).

mod common;

use burn::tensor::Device;
use common::parity::max_diff;
use common::torch_net::{CLASSES, LITE, RESNET, TorchNet};
use ssd_model::{BaseConfig, LoadMode, SsdConfig};

/// Largest accepted difference of a raw output from the float64 reference.
const OUTPUT_TOLERANCE: f32 = 1e-4;

fn configuration_is_read_from_the_state_dict(net: &TorchNet) {
    let entries = ssd_model::pth_entries(&net.fixture("model.pth")).expect("keys");
    let config = SsdConfig::from_state_dict(&entries).expect("a configuration");
    assert_eq!(config, net.reduced_config());
}

fn default_boxes_match(net: &TorchNet) {
    let expected = net.expected();
    let (want, shape) = &expected["priors"];
    assert_eq!(shape, &vec![net.priors, 4]);
    let ours: Vec<f32> = net
        .reduced_config()
        .priors
        .priors()
        .expect("valid")
        .iter()
        .flat_map(|b| [b.cx, b.cy, b.w, b.h])
        .collect();
    let d = max_diff(&ours, want);
    assert!(d < 1e-6, "{}: default boxes differ by {d:e}", net.dir);
}

fn evaluation_outputs_match(net: &TorchNet) {
    let (loc_diff, conf_diff) = net.evaluation_diff(&Device::flex());
    let expected = net.expected();
    eprintln!(
        "{} evaluation: loc {loc_diff:e}, conf {conf_diff:e}; PyTorch float32: loc {:e}, conf {:e}",
        net.dir, expected["f32_error.loc"].0[0], expected["f32_error.conf"].0[0]
    );
    // 1e-4, or twice PyTorch's own float32 distance where that is farther (the full-size ResNet
    // at random init: outputs in the hundreds).
    let allowed = |key: &str| OUTPUT_TOLERANCE.max(2.0 * expected[key].0[0]);
    assert!(
        loc_diff < allowed("f32_error.loc") && conf_diff < allowed("f32_error.conf"),
        "loc {loc_diff:e}, conf {conf_diff:e}"
    );
}

fn training_outputs_and_loss_match(net: &TorchNet) {
    let pass = net.training_pass(&Device::flex().autodiff());
    let expected = net.expected();
    let ((loc, conf), (loss_loc, loss_conf)) = (pass.output_diff, pass.loss_errors);
    eprintln!(
        "{} training: loc {loc:e}, conf {conf:e}, loss rel {loss_loc:e} / {loss_conf:e}; \
         PyTorch float32: loc {:e}, conf {:e}",
        net.dir, expected["f32_error.train_loc"].0[0], expected["f32_error.train_conf"].0[0]
    );
    // Batch statistics over a batch of two on the smallest maps (two values per channel on the
    // ResNet's 1x1 level) amplify float32 rounding: where PyTorch's own float32 run is farther
    // than 1e-4 from the float64 result (5.9e-4 / 1.1e-3 on the ResNet fixture), ours may be as
    // far as twice that.
    let allowed = |key: &str| OUTPUT_TOLERANCE.max(2.0 * expected[key].0[0]);
    assert!(
        loc < allowed("f32_error.train_loc") && conf < allowed("f32_error.train_conf"),
        "loc {loc:e}, conf {conf:e}"
    );
    assert!(
        loss_loc < 1e-5 && loss_conf < 1e-5,
        "{loss_loc:e} / {loss_conf:e}"
    );
}

fn imagenet_weights_fill_the_backbone_only(net: &TorchNet) {
    let device = Device::flex();
    let fresh = net.reduced_config().init(&device).expect("valid");
    let before = fresh.named_values();
    let (model, report) = fresh
        .load_pytorch(&net.fixture("backbone.pth"), LoadMode::Backbone)
        .expect("the ImageNet layout loads as a backbone");
    let (layout, left_out) = net.backbone;
    assert_eq!(report.layout, layout);
    for prefix in left_out {
        assert!(
            report.ignored.iter().any(|k| k.starts_with(prefix)),
            "{prefix}"
        );
    }
    // The fixture's backbone is the one inside model.pth: they agree tensor for tensor, and
    // every backbone tensor was filled.
    let in_base = |name: &str| net.base.iter().any(|p| name.starts_with(p));
    let detector = net.load(&device, "model.pth").0.named_values();
    let ours = model.named_values();
    let backbone: Vec<&String> = ours.keys().filter(|n| in_base(n)).collect();
    assert_eq!(report.loaded.iter().collect::<Vec<_>>(), backbone);
    for name in backbone {
        assert_eq!(ours[name], detector[name], "{name}");
    }
    // Extras and heads keep their initial values.
    for (name, v) in &ours {
        if !in_base(name) {
            assert_eq!(v, &before[name], "{name}");
        }
    }
}

fn sgd_step_is_as_close_as_pytorchs_own_float32(net: &TorchNet) {
    let ours = net.sgd_step(net.training_pass(&Device::flex().autodiff()));
    let reference = net.load(&Device::flex(), "updated.pth").0.named_values();
    let (worst, name) = ours
        .iter()
        .map(|(name, v)| (max_diff(v, &reference[name]), name))
        .fold((0.0f32, ""), |a, (d, n)| if d > a.0 { (d, n) } else { a });
    let torch = net.expected()["f32_error.step_abs"].0[0];
    eprintln!(
        "{} float32 step: {worst:e} ({name}); PyTorch float32: {torch:e}",
        net.dir
    );
    assert!(
        worst <= 2.0 * torch,
        "{name}: {worst:e} against PyTorch's {torch:e}"
    );
}

#[test]
fn the_configuration_is_read_from_the_state_dict() {
    configuration_is_read_from_the_state_dict(&LITE);
    configuration_is_read_from_the_state_dict(&RESNET);
}

#[test]
fn default_boxes_are_torchvisions_and_nvidias() {
    default_boxes_match(&LITE);
    default_boxes_match(&RESNET);
}

#[test]
fn lite_evaluation_outputs_match_torchvision() {
    evaluation_outputs_match(&LITE);
}

#[test]
fn resnet_evaluation_outputs_match_the_reference() {
    evaluation_outputs_match(&RESNET);
}

#[test]
fn lite_training_outputs_and_loss_match_torchvision() {
    training_outputs_and_loss_match(&LITE);
}

#[test]
fn resnet_training_outputs_and_loss_match_the_reference() {
    training_outputs_and_loss_match(&RESNET);
}

#[test]
fn imagenet_backbones_fill_the_base_only() {
    imagenet_weights_fill_the_backbone_only(&LITE);
    imagenet_weights_fill_the_backbone_only(&RESNET);
}

#[test]
fn lite_sgd_step_is_as_close_as_pytorchs_own_float32() {
    sgd_step_is_as_close_as_pytorchs_own_float32(&LITE);
}

#[test]
fn resnet_sgd_step_is_as_close_as_pytorchs_own_float32() {
    sgd_step_is_as_close_as_pytorchs_own_float32(&RESNET);
}

#[test]
fn a_preset_takes_an_imagenet_mobilenets_tail_and_width() {
    let mut config = SsdConfig::ssdlite320(CLASSES);
    let entries = ssd_model::pth_entries(&LITE.fixture("backbone.pth")).expect("keys");
    config.fit_backbone(&entries).expect("a MobileNetV3-Large");
    let BaseConfig::MobilenetV3(base) = &config.base else {
        unreachable!("a MobileNetV3 preset")
    };
    assert!(base.reduced_tail);
    assert!((base.width_mult - 0.25).abs() < 1e-12);
    // The extra blocks are the detector's own.
    assert_eq!(base.extras, vec![512, 256, 256, 128]);
    // A VGG preset is left as it is.
    let mut vgg = SsdConfig::ssd300(CLASSES);
    vgg.fit_backbone(&entries).expect("nothing to fit");
    assert_eq!(vgg, SsdConfig::ssd300(CLASSES));
}

#[test]
fn a_preset_takes_an_imagenet_resnets_width_and_blocks() {
    let mut config = SsdConfig::ssd300_resnet50(CLASSES);
    let entries = ssd_model::pth_entries(&RESNET.fixture("backbone.pth")).expect("keys");
    config.fit_backbone(&entries).expect("a ResNet");
    let BaseConfig::Resnet(base) = &config.base else {
        unreachable!("a ResNet preset")
    };
    assert_eq!((base.width, base.blocks.clone()), (16, vec![2, 2, 2]));
    // The extra layers are the detector's own, and the file then fills the base.
    assert_eq!(base.extras, ssd_model::ResNetBase::resnet50().extras);
    let model = config.init(&Device::flex()).expect("valid");
    model
        .load_pytorch(&RESNET.fixture("backbone.pth"), LoadMode::Backbone)
        .expect("the backbone fits");
}

/// The full-size networks (`python3 tools/make_lite_fixtures.py --full DIR` and
/// `tools/make_resnet_fixtures.py --full DIR`, into `SSD_FULL_LITE_DIR` and
/// `SSD_FULL_RESNET_DIR`): evaluation outputs, training outputs and loss, as for the reduced
/// fixtures. The SGD step is checked in float64 (`backbone_parity_f64.rs`, exact within 0.11 of
/// its allowance): in float32 the full-width SSDLite's stem lands 5.4e-3 from the float64 result
/// after the step where PyTorch's own float32 run lands 5.4e-4, rounding in the backward through
/// 51,200 products per weight and batch statistics that float64 shows is not a difference in
/// what is computed.
#[test]
#[ignore = "needs the full-size fixtures: SSD_FULL_LITE_DIR, SSD_FULL_RESNET_DIR"]
fn full_size_networks_match_pytorch() {
    for (var, net) in [("SSD_FULL_LITE_DIR", LITE), ("SSD_FULL_RESNET_DIR", RESNET)] {
        let dir = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
        let net = net.full_size(dir);
        evaluation_outputs_match(&net);
        training_outputs_and_loss_match(&net);
    }
}

/// torchvision's final detections (`SSD.postprocess_detections` with
/// `ssdlite320_mobilenet_v3_large`'s settings, run by `tools/make_lite_fixtures.py` on PyTorch's
/// float32 outputs) against ours from the same outputs with SSDLite's test settings: the same
/// detections in the same order, scores within 1e-6, boxes within 1e-3 pixels of 320.
#[test]
fn lite_final_detections_match_torchvisions_postprocessing() {
    use burn::tensor::{Tensor, TensorData};
    let expected = LITE.expected();
    let device = Device::flex();
    let (n, p) = (common::torch_net::BATCH, LITE.priors);
    let tensor = |key: &str, k: usize| {
        Tensor::<3>::from_data(TensorData::new(expected[key].0.clone(), [n, p, k]), &device)
    };
    let config = LITE.reduced_config();
    let post = ssd_model::PostProcessor::new(
        config.priors.priors().expect("priors"),
        config.test_post_process(),
    )
    .with_clip_before_nms(config.clips_before_nms());
    let side = LITE.size as u32;
    let found = post
        .detect(
            tensor("det_loc", 4),
            tensor("det_conf", CLASSES),
            &vec![[side, side]; n],
        )
        .expect("detections");
    for (b, ours) in found.iter().enumerate() {
        let theirs: Vec<&[f32]> = expected[&format!("det.{b}")].0.chunks(6).collect();
        assert_eq!(ours.len(), theirs.len(), "image {b}");
        for (i, (d, t)) in ours.iter().zip(&theirs).enumerate() {
            let box_diff = max_diff(&d.bbox, &t[..4]);
            assert!(
                d.label == t[5] as usize && (d.score - t[4]).abs() < 1e-6 && box_diff < 1e-3,
                "image {b}, detection {i}: ours {d:?}, torchvision's {t:?}"
            );
        }
    }
}
