//! Parity with PyTorch on Flex: `tools/make_model_fixtures.py` (our own PyTorch code, amdegroot's
//! layout, seeded random init) wrote an SSD300-topology network with narrow channels
//! (`tests/fixtures/amdegroot_reduced/`): its state dict, its outputs for a fixed input, the
//! MultiBox loss on fixed targets and the state dict after one SGD step. Tolerances: outputs 1e-4
//! absolute, loss 1e-5 relative, updated weights 1e-5 absolute.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ssd_core::PriorConfig;
use ssd_model::{
    ExtraConv, LoadMode, MultiBoxLoss, PthLayout, Ssd, SsdConfig, VggConfig, read_pth_tensors,
};

const BATCH: usize = 2;
const SIZE: usize = 300;
const PRIORS: usize = 8732;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/amdegroot_reduced")
        .join(name)
}

/// The reduced SSD300 of the fixture script (`REDUCED`).
fn reduced_config(num_classes: usize) -> SsdConfig {
    let vgg = VggConfig {
        blocks: vec![
            vec![4, 4],
            vec![8, 8],
            vec![16, 16, 16],
            vec![32, 32, 32],
            vec![32, 32, 32],
        ],
        ceil_pool_block: 2,
        source_block: 3,
        fc_channels: 64,
        fc_dilation: 6,
    };
    let extras = [
        (16, 1, 1, 0),
        (32, 3, 2, 1),
        (8, 1, 1, 0),
        (16, 3, 2, 1),
        (8, 1, 1, 0),
        (16, 3, 1, 0),
        (8, 1, 1, 0),
        (16, 3, 1, 0),
    ]
    .map(|(c, k, s, p)| ExtraConv::new(c, k, s, p))
    .to_vec();
    SsdConfig::new(num_classes, vgg, extras, PriorConfig::ssd300_voc())
}

/// The script's `hashed_unit`: `((i + salt) * 2654435761 mod 2^32) / 2^32 * 2 - 1`.
fn hashed_unit(count: usize, salt: u64) -> Vec<f32> {
    (0..count as u64)
        .map(|i| {
            let h = ((i + salt).wrapping_mul(2_654_435_761)) % (1u64 << 32);
            (h as f64 / 4_294_967_296.0 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// The script's `targets`: labels `[N, P]` and encoded locations `[N, P, 4]`.
fn targets(classes: i64) -> (Vec<i64>, Vec<f32>) {
    let mut labels = Vec::with_capacity(BATCH * PRIORS);
    let mut locations = Vec::with_capacity(BATCH * PRIORS * 4);
    for n in 0..BATCH as i64 {
        for p in 0..PRIORS as i64 {
            let positive = (p + 3 * n) % 53 == 0;
            labels.push(if positive {
                (p * 7 + n * 13) % (classes - 1) + 1
            } else {
                0
            });
            for k in 0..4 {
                let v = ((p as f64) * 0.37 + f64::from(k) * 1.1 + n as f64).sin() * 2.0;
                locations.push(v as f32);
            }
        }
    }
    (labels, locations)
}

fn load(device: &Device, file: &str) -> Ssd {
    let model = reduced_config(6).init(device).expect("config is valid");
    let (model, report) = model
        .load_pytorch(&fixture(file), LoadMode::Full)
        .expect("fixture loads");
    assert_eq!(report.layout, PthLayout::Amdegroot);
    assert_eq!(report.loaded.len(), 2 * (15 + 8 + 6 + 6) + 1);
    model
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 data")
}

/// Every 7th prior of `[N, P, K]`.
fn every_7th(t: Tensor<3>) -> Vec<f32> {
    let [n, p, k] = t.dims();
    let v = values(t);
    let mut out = Vec::new();
    for i in 0..n {
        for j in (0..p).step_by(7) {
            out.extend_from_slice(&v[(i * p + j) * k..(i * p + j + 1) * k]);
        }
    }
    out
}

fn conv_params(model: &Ssd) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for (prefix, convs) in [
        ("vgg", &model.vgg),
        ("extras", &model.extras),
        ("loc", &model.loc),
        ("conf", &model.conf),
    ] {
        for (i, c) in convs.iter().enumerate() {
            out.push((format!("{prefix}.{i}.weight"), values(c.weight.val())));
            if let Some(b) = &c.bias {
                out.push((format!("{prefix}.{i}.bias"), values(b.val())));
            }
        }
    }
    out.push((
        "l2norm.weight".to_owned(),
        values(model.l2norm.weight.val()),
    ));
    out
}

#[test]
fn forward_loss_and_sgd_step_match_pytorch_on_flex() {
    let device = Device::flex().autodiff();
    let model = load(&device, "model.pth");
    let expected = read_pth_tensors(&fixture("expected.pth")).expect("expected outputs");

    let input = Tensor::<4>::from_data(
        TensorData::new(
            hashed_unit(BATCH * 3 * SIZE * SIZE, 0),
            [BATCH, 3, SIZE, SIZE],
        ),
        &device,
    );
    let (loc, conf) = model.forward(input);
    assert_eq!(loc.dims(), [BATCH, PRIORS, 4]);
    let loc_diff = max_diff(&every_7th(loc.clone()), &expected["loc_sub"].0);
    let conf_diff = max_diff(&every_7th(conf.clone()), &expected["conf_sub"].0);
    eprintln!("max |burn - torch|: loc {loc_diff:e}, conf {conf_diff:e}");
    assert!(
        loc_diff < 1e-4 && conf_diff < 1e-4,
        "loc {loc_diff:e}, conf {conf_diff:e}"
    );

    let (labels, locations) = targets(6);
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [BATCH, PRIORS]), &device);
    let locations = Tensor::<3>::from_data(TensorData::new(locations, [BATCH, PRIORS, 4]), &device);
    let parts = MultiBoxLoss::default().forward(loc, conf, labels, locations);
    let loss_loc = values(parts.loc.clone())[0];
    let loss_conf = values(parts.conf.clone())[0];
    let (want_loc, want_conf) = (expected["loss_loc"].0[0], expected["loss_conf"].0[0]);
    let rel = |a: f32, b: f32| (a - b).abs() / b.abs();
    eprintln!(
        "loss: loc {loss_loc} vs {want_loc} (rel {:e}), conf {loss_conf} vs {want_conf} (rel {:e})",
        rel(loss_loc, want_loc),
        rel(loss_conf, want_conf)
    );
    assert!(
        rel(loss_loc, want_loc) < 1e-5,
        "loc loss {loss_loc} vs {want_loc}"
    );
    assert!(
        rel(loss_conf, want_conf) < 1e-5,
        "conf loss {loss_conf} vs {want_conf}"
    );

    let grads = GradientsParams::from_grads(parts.total(1.0).backward(), &model);
    let mut optimizer = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
        .init();
    let stepped = optimizer.step(1e-3, model, grads);
    let reference = load(&Device::flex(), "updated.pth");
    let mut worst = (String::new(), 0.0f32);
    for ((name, ours), (_, theirs)) in conv_params(&stepped.valid())
        .into_iter()
        .zip(conv_params(&reference))
    {
        let d = max_diff(&ours, &theirs);
        if d > worst.1 {
            worst = (name, d);
        }
    }
    eprintln!(
        "after one SGD step: largest difference {} {:e}",
        worst.0, worst.1
    );
    assert!(
        worst.1 < 1e-5,
        "largest weight difference after one SGD step: {} {:e}",
        worst.0,
        worst.1
    );
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
    config.vgg.fc_channels = 128;
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
