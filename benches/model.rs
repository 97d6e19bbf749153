//! Model benches (ssd-model), one group per compiled-in backend: SSD300 forward at batch 1 and 8,
//! a training step (forward, MultiBox loss, backward, SGD) at batch 4, and post-processing of one
//! image's outputs. A second group per backend times hard negative mining alone: the on-device
//! top-k of [`ssd_model::hard_negatives`] beside the argsort-of-argsort ranking it replaced, at
//! the quickstart's size (small preset, batch 16) and SSD300's (batch 32).
//!
//! A group per backend times SSDLite320 (torchvision's `ssdlite320_mobilenet_v3_large`, 21
//! classes, reduced tail) and one NVIDIA's SSD300 on ResNet-50 (21 classes): forward at batch 1
//! and 8 and a training step at batch 8; and a group
//! times MobileNetV3's depthwise convolutions alone, forward and backward: the 3x3 of the
//! 64-wide block at 160x160 and the 5x5 of C4's 672-wide expansion at 20x20, batch 8.
//!
//! `cargo bench --bench model [--features tch,wgpu]`, or `bash benches/peers/compare-model.sh`,
//! which also runs the same work in PyTorch (`benches/peers/model.py`) on this CPU with the same
//! number of threads.

use std::hint::black_box;
use std::time::Duration;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use ssd_backend::Backend;
use ssd_model::{MultiBoxLoss, PostProcessConfig, PostProcessor, SsdConfig, hard_negatives};

/// Deterministic values in [-1, 1).
fn unit(count: usize, salt: u64) -> Vec<f32> {
    (0..count as u64)
        .map(|i| {
            let h = ((i + salt).wrapping_mul(2_654_435_761)) % (1u64 << 32);
            (h as f64 / 4_294_967_296.0 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn images(batch: usize, device: &Device) -> Tensor<4> {
    images_of(batch, 300, 100.0, device)
}

/// `batch` images of `size` pixels, values in `[-scale, scale)`.
fn images_of(batch: usize, size: usize, scale: f32, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = unit(batch * 3 * size * size, 1)
        .into_iter()
        .map(|v| v * scale)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, 3, size, size]), device)
}

/// Forward, MultiBox loss, backward and an SGD step of `net` on `x`; returns the stepped network.
fn train_step(
    net: ssd_model::Ssd,
    optimizer: &mut burn::optim::ModuleOptimizer,
    x: &Tensor<4>,
    labels: &Tensor<2, Int>,
    locations: &Tensor<3>,
) -> ssd_model::Ssd {
    let (loc, conf) = net.forward(x.clone());
    let parts = MultiBoxLoss::default().forward(loc, conf, labels.clone(), locations.clone());
    let grads = GradientsParams::from_grads(parts.total(1.0).backward(), &net);
    optimizer.step(1e-3, net, grads)
}

/// One updated weight read back: waits for the step on lazy backends.
fn sync(net: &ssd_model::Ssd) {
    let (_, values) = net.named_values().into_iter().next().expect("a parameter");
    black_box(values.first().copied());
}

fn sgd() -> burn::optim::ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
        .init()
}

/// Targets with about 20 positives per image.
fn targets(batch: usize, priors: usize, device: &Device) -> (Tensor<2, Int>, Tensor<3>) {
    let labels: Vec<i64> = (0..batch * priors)
        .map(|i| if i % 431 == 0 { (i % 20 + 1) as i64 } else { 0 })
        .collect();
    let locations = unit(batch * priors * 4, 2);
    (
        Tensor::from_data(TensorData::new(labels, [batch, priors]), device),
        Tensor::from_data(TensorData::new(locations, [batch, priors, 4]), device),
    )
}

fn model(c: &mut Criterion) {
    let config = SsdConfig::ssd300(21);
    let priors = config.priors.priors().expect("priors");
    for backend in Backend::compiled() {
        let device = backend.device().expect("device");
        let train_device = backend.autodiff_device().expect("autodiff device");
        let net = config.init(&device).expect("ssd300");
        let mut group = c.benchmark_group(format!("ssd300_{backend}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        for batch in [1, 8] {
            let x = images(batch, &device);
            group.bench_function(format!("forward_batch{batch}"), |b| {
                b.iter(|| {
                    let (loc, conf) = net.forward(x.clone());
                    // Wait for the result: read one value back.
                    black_box(loc.slice([0..1, 0..1, 0..1]).into_data());
                    black_box(conf.slice([0..1, 0..1, 0..1]).into_data())
                })
            });
        }
        let mut train_net = config.init(&train_device).expect("ssd300");
        let mut optimizer = sgd();
        let x = images(4, &train_device);
        let (labels, locations) = targets(4, priors.len(), &train_device);
        group.bench_function("train_step_batch4", |b| {
            b.iter(|| {
                train_net = train_step(train_net.clone(), &mut optimizer, &x, &labels, &locations);
                sync(&train_net)
            })
        });
        let pp = PostProcessor::new(priors.clone(), PostProcessConfig::default());
        let (loc, conf) = net.forward(images(1, &device));
        group.bench_function("postprocess_1_image", |b| {
            b.iter(|| {
                black_box(
                    pp.detect(loc.clone(), conf.clone(), &[[500, 375]])
                        .expect("detect"),
                )
            })
        });
        group.finish();
    }
}

/// The networks on other bases, 21 classes: (group name, configuration).
fn other_bases() -> [(&'static str, SsdConfig); 2] {
    [
        ("ssdlite320", SsdConfig::ssdlite320(21)),
        ("ssd300_resnet50", SsdConfig::ssd300_resnet50(21)),
    ]
}

fn bases(c: &mut Criterion) {
    for (name, config) in other_bases() {
        base_group(c, name, &config);
    }
}

fn base_group(c: &mut Criterion, name: &str, config: &SsdConfig) {
    let priors = config.num_priors();
    let side = config.input_size();
    for backend in Backend::compiled() {
        let device = backend.device().expect("device");
        let train_device = backend.autodiff_device().expect("autodiff device");
        let net = config.init(&device).expect("network");
        let mut group = c.benchmark_group(format!("{name}_{backend}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(15));
        for batch in [1, 8] {
            let x = images_of(batch, side, 1.0, &device);
            group.bench_function(format!("forward_batch{batch}"), |b| {
                b.iter(|| {
                    let (loc, conf) = net.forward(x.clone());
                    black_box(loc.slice([0..1, 0..1, 0..1]).into_data());
                    black_box(conf.slice([0..1, 0..1, 0..1]).into_data())
                })
            });
        }
        let mut train_net = config.init(&train_device).expect("network");
        let mut optimizer = sgd();
        let x = images_of(8, side, 1.0, &train_device);
        let (labels, locations) = targets(8, priors, &train_device);
        group.bench_function("train_step_batch8", |b| {
            b.iter(|| {
                train_net = train_step(train_net.clone(), &mut optimizer, &x, &labels, &locations);
                sync(&train_net)
            })
        });
        group.finish();
    }
}

/// MobileNetV3's depthwise convolutions alone at batch 8: (channels, side, kernel, stride).
const DEPTHWISE: [(&str, usize, usize, usize, usize); 2] = [
    ("3x3_64ch_160px", 64, 160, 3, 2),
    ("5x5_672ch_20px", 672, 20, 5, 1),
];

fn depthwise(c: &mut Criterion) {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    for backend in Backend::compiled() {
        let device = backend.device().expect("device");
        let train_device = backend.autodiff_device().expect("autodiff device");
        let mut group = c.benchmark_group(format!("depthwise_{backend}"));
        group.sample_size(20);
        for (name, channels, side, kernel, stride) in DEPTHWISE {
            let pad = (kernel - 1) / 2;
            let conv = |device: &Device| {
                Conv2dConfig::new([channels, channels], [kernel, kernel])
                    .with_groups(channels)
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                    .with_bias(false)
                    .init(device)
            };
            let values = unit(8 * channels * side * side, 3);
            let shape = [8, channels, side, side];
            let x = Tensor::<4>::from_data(TensorData::new(values.clone(), shape), &device);
            let forward = conv(&device);
            group.bench_function(format!("forward_{name}"), |b| {
                b.iter(|| black_box(forward.forward(x.clone()).slice([0..1, 0..1]).into_data()))
            });
            let x = Tensor::<4>::from_data(TensorData::new(values, shape), &train_device)
                .require_grad();
            let train = conv(&train_device);
            group.bench_function(format!("forward_backward_{name}"), |b| {
                b.iter(|| {
                    let grads = train.forward(x.clone()).sum().backward();
                    black_box(
                        train
                            .weight
                            .grad(&grads)
                            .map(|g| g.narrow(0, 0, 1).into_data()),
                    )
                })
            });
        }
        group.finish();
    }
}

/// The ranking `hard_negatives` replaced: the rank of each value is the argsort of the descending
/// argsort, and the first `negatives[i]` ranks of row `i` are taken. Kept here as the baseline.
fn hard_negatives_by_sort(mining: Tensor<2>, negatives: &[usize]) -> Tensor<2> {
    let [n, p] = mining.dims();
    let k: Vec<f32> = negatives.iter().map(|&k| k.min(p) as f32).collect();
    let k = Tensor::<1>::from_data(TensorData::new(k, [n]), &mining.device()).reshape([n, 1]);
    let rank = mining.argsort_descending(1).argsort(1).float();
    rank.lower(k.expand([n, p])).float()
}

/// Mining values as the loss makes them (background losses, every 431st prior a positive at 0),
/// all distinct so that any two correct rankings agree, and negative counts of three per
/// positive, 10 to 40 positives per image.
fn mining_input(batch: usize, priors: usize, device: &Device) -> (Tensor<2>, Vec<usize>) {
    let total = batch * priors; // below 2^24: every (i * 7919) % total is exact in f32
    let values: Vec<f32> = (0..total)
        .map(|i| {
            if i % 431 == 0 {
                0.0
            } else {
                1.0e-3 + ((i * 7919) % total) as f32 / total as f32
            }
        })
        .collect();
    let negatives = (0..batch).map(|i| 3 * (10 + (i * 7) % 31)).collect();
    (
        Tensor::from_data(TensorData::new(values, [batch, priors]), device),
        negatives,
    )
}

fn mining(c: &mut Criterion) {
    let sizes = [
        ("small_batch16", SsdConfig::small(21), 16),
        ("ssd300_batch32", SsdConfig::ssd300(21), 32),
    ];
    for backend in Backend::compiled() {
        let device = backend.device().expect("device");
        let mut group = c.benchmark_group(format!("mining_{backend}"));
        group.sample_size(20);
        for (name, config, batch) in &sizes {
            let priors = config.priors.priors().expect("priors").len();
            let (values, negatives) = mining_input(*batch, priors, &device);
            // Both select the same priors (distinct values), or the comparison means nothing.
            let a = hard_negatives(values.clone(), &negatives);
            let b = hard_negatives_by_sort(values.clone(), &negatives);
            assert_eq!(a.into_data(), b.into_data(), "{backend} {name}");
            group.bench_function(format!("topk_{name}"), |bench| {
                bench.iter(|| black_box(hard_negatives(values.clone(), &negatives).into_data()))
            });
            group.bench_function(format!("sort_{name}"), |bench| {
                bench.iter(|| {
                    black_box(hard_negatives_by_sort(values.clone(), &negatives).into_data())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, model, bases, depthwise, mining);
criterion_main!(benches);
