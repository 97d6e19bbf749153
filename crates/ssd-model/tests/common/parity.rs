//! What `tools/make_model_fixtures.py` computes, reproduced for Burn: shared by
//! `crates/ssd-model/tests/pytorch_parity.rs` (Flex) and the workspace's `tests/backends.rs` (every
//! backend), which includes this file with `#[path]`.

#![allow(dead_code, unreachable_pub)]

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

/// The fixture folder, relative to the ssd-model crate.
pub const FIXTURES: &str = "tests/fixtures/amdegroot_reduced";
/// Batch of the fixture input.
pub const BATCH: usize = 2;
/// Input side.
pub const SIZE: usize = 300;
/// SSD300 priors.
pub const PRIORS: usize = 8732;

pub fn fixture(name: &str) -> PathBuf {
    crate_dir().join(FIXTURES).join(name)
}

/// The ssd-model crate's folder. Included from the crate's tests, ssd-cli's and the workspace root's
/// tests/backends.rs, whose binary may also run from another checkout (scripts/gpu-check.sh):
/// try the crate folder at build time, then from the working directory.
pub fn crate_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = std::env::current_dir().unwrap_or_default();
    let candidates = [
        manifest.to_path_buf(),
        manifest.join("crates/ssd-model"),
        manifest.join("../ssd-model"),
        cwd.join("crates/ssd-model"),
        cwd,
    ];
    candidates
        .iter()
        .find(|d| d.join(FIXTURES).exists())
        .unwrap_or(&candidates[0])
        .clone()
}

/// The reduced SSD300 of the fixture script (`REDUCED`).
pub fn reduced_config(num_classes: usize) -> SsdConfig {
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
        batch_norm: false,
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
pub fn hashed_unit(count: usize, salt: u64) -> Vec<f32> {
    (0..count as u64)
        .map(|i| {
            let h = ((i + salt).wrapping_mul(2_654_435_761)) % (1u64 << 32);
            (h as f64 / 4_294_967_296.0 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// The script's `targets`: labels `[N, P]` and encoded locations `[N, P, 4]` for `priors` priors.
pub fn targets(classes: i64, priors: usize) -> (Vec<i64>, Vec<f32>) {
    let mut labels = Vec::with_capacity(BATCH * priors);
    let mut locations = Vec::with_capacity(BATCH * priors * 4);
    for n in 0..BATCH as i64 {
        for p in 0..priors as i64 {
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

pub fn load(device: &Device, file: &str) -> Ssd {
    load_from(device, &reduced_config(6), &fixture(file))
}

/// Loads an amdegroot-layout state dict into `config`'s network, checking every tensor is used.
pub fn load_from(device: &Device, config: &SsdConfig, path: &Path) -> Ssd {
    let model = config.init(device).expect("config is valid");
    let (model, report) = model
        .load_pytorch(path, LoadMode::Full)
        .expect("fixture loads");
    assert_eq!(report.layout, PthLayout::Amdegroot);
    assert_eq!(report.loaded.len(), 2 * (15 + 8 + 6 + 6) + 1);
    model
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 data")
}

/// Every 7th prior of `[N, P, K]`.
pub fn every_7th(t: Tensor<3>) -> Vec<f32> {
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

pub fn conv_params(model: &Ssd) -> Vec<(String, Vec<f32>)> {
    let Ssd::Vgg(model) = model else {
        unreachable!("a VGG network")
    };
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

/// What one run against the fixture measured.
#[derive(Debug, Clone)]
pub struct Parity {
    /// Max |ours - torch| over the sampled `loc` values.
    pub loc_diff: f32,
    /// Max |ours - torch| over the sampled `conf` values.
    pub conf_diff: f32,
    /// Relative error of the localisation loss.
    pub loss_loc_rel: f32,
    /// Relative error of the confidence loss.
    pub loss_conf_rel: f32,
    /// The parameter with the largest difference after one SGD step, and that difference (`None`
    /// when the step was not taken).
    pub worst_weight: Option<(String, f32)>,
}

impl Parity {
    /// The largest parameter difference after the SGD step (infinite when no step was taken, so
    /// that a bound on it fails).
    pub fn weight_diff(&self) -> f32 {
        self.worst_weight.as_ref().map_or(f32::INFINITY, |w| w.1)
    }
}

/// Whether [`run_parity_in`] also takes the SGD step and compares the updated weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Forward and loss, then backward, one SGD step and the updated weights.
    Sgd,
    /// Forward and loss only.
    None,
}

/// Forward, loss and one SGD step on `device` (an autodiff device), compared with the committed
/// reduced fixture.
pub fn run_parity(device: &Device) -> Parity {
    run_parity_in(&fixture(""), &reduced_config(6), device, Step::Sgd)
}

/// The same against the files of `tools/make_model_fixtures.py` in `dir` for `config`'s network,
/// with or without the SGD step.
pub fn run_parity_in(dir: &Path, config: &SsdConfig, device: &Device, step: Step) -> Parity {
    let model = load_from(device, config, &dir.join("model.pth"));
    let expected = read_pth_tensors(&dir.join("expected.pth")).expect("expected outputs");
    let input = Tensor::<4>::from_data(
        TensorData::new(
            hashed_unit(BATCH * 3 * SIZE * SIZE, 0),
            [BATCH, 3, SIZE, SIZE],
        ),
        device,
    );
    let (loc, conf) = model.forward(input);
    assert_eq!(loc.dims(), [BATCH, PRIORS, 4]);
    let loc_diff = max_diff(&every_7th(loc.clone()), &expected["loc_sub"].0);
    let conf_diff = max_diff(&every_7th(conf.clone()), &expected["conf_sub"].0);

    let (labels, locations) = targets(config.num_classes as i64, PRIORS);
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [BATCH, PRIORS]), device);
    let locations = Tensor::<3>::from_data(TensorData::new(locations, [BATCH, PRIORS, 4]), device);
    let parts = MultiBoxLoss::default().forward(loc, conf, labels, locations);
    let loss_loc = values(parts.loc.clone())[0];
    let loss_conf = values(parts.conf.clone())[0];
    let (want_loc, want_conf) = (expected["loss_loc"].0[0], expected["loss_conf"].0[0]);
    let rel = |a: f32, b: f32| (a - b).abs() / b.abs();

    let worst_weight = (step == Step::Sgd).then(|| {
        let grads = GradientsParams::from_grads(parts.total(1.0).backward(), &model);
        let mut optimizer = SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
            ))
            .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
            .init();
        let stepped = optimizer.step(1e-3, model, grads);
        let reference = load_from(device, config, &dir.join("updated.pth"));
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
        worst
    });
    Parity {
        loc_diff,
        conf_diff,
        loss_loc_rel: rel(loss_loc, want_loc),
        loss_conf_rel: rel(loss_conf, want_conf),
        worst_weight,
    }
}
