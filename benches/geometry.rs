//! Geometry benches (ssd-core): priors, IoU, matching, NMS at SSD300 sizes.
//!
//! `cargo bench --bench geometry`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ssd_core::{
    BoxCoder, CenterBox, CornerBox, PriorConfig, batched_nms, iou_matrix, match_priors, nms,
};

/// Deterministic pseudo-random numbers in [0, 1).
fn unit_values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// The SSD300 priors decoded with small random offsets: 8732 detection-like boxes that overlap
/// the way a real detector's raw outputs do.
fn detection_boxes(priors: &[CenterBox], seed: u64) -> Vec<CornerBox> {
    let coder = BoxCoder::default();
    let noise = unit_values(priors.len() * 4, seed);
    priors
        .iter()
        .zip(noise.chunks_exact(4))
        .map(|(p, n)| coder.decode([n[0] - 0.5, n[1] - 0.5, n[2] - 0.5, n[3] - 0.5], p))
        .collect()
}

fn ground_truth(n: usize) -> Vec<CornerBox> {
    let v = unit_values(n * 4, 3);
    v.chunks_exact(4)
        .map(|c| {
            let (x, y) = (c[0] * 0.7, c[1] * 0.7);
            CornerBox::new(x, y, x + 0.05 + c[2] * 0.25, y + 0.05 + c[3] * 0.25)
        })
        .collect()
}

fn geometry(c: &mut Criterion) {
    let config = PriorConfig::ssd300_voc();
    let priors = config.priors().expect("valid preset");
    let prior_corners: Vec<CornerBox> = priors.iter().map(CenterBox::to_corner).collect();
    let gt = ground_truth(10);
    let labels: Vec<usize> = (1..=gt.len()).collect();
    let boxes = detection_boxes(&priors, 11);
    let scores = unit_values(boxes.len(), 5);
    let classes: Vec<usize> = (0..boxes.len()).map(|i| 1 + i % 20).collect();
    let boxes_20: Vec<CornerBox> = (0..20).flat_map(|_| boxes.iter().copied()).collect();
    let scores_20 = unit_values(boxes_20.len(), 9);
    let classes_20: Vec<usize> = (0..boxes_20.len()).map(|i| 1 + i / boxes.len()).collect();

    c.bench_function("priors ssd300 (8732)", |b| {
        b.iter(|| black_box(&config).priors())
    });
    c.bench_function("iou_matrix 8732 x 10", |b| {
        b.iter(|| iou_matrix(black_box(&prior_corners), black_box(&gt)))
    });
    c.bench_function("match_priors 8732 priors, 10 objects", |b| {
        b.iter(|| match_priors(black_box(&gt), &labels, &priors, 0.5, &BoxCoder::default()))
    });
    c.bench_function("nms 8732 boxes @0.45", |b| {
        b.iter(|| nms(black_box(&boxes), black_box(&scores), 0.45))
    });
    c.bench_function("batched_nms 8732 boxes, 20 class ids @0.45", |b| {
        b.iter(|| batched_nms(black_box(&boxes), &scores, &classes, 0.45))
    });
    // 174,640 boxes: every prior scored for every VOC class, with no score filter first.
    let mut heavy = c.benchmark_group("heavy");
    heavy.sample_size(10);
    heavy.bench_function("batched_nms 8732 x 20 classes @0.45", |b| {
        b.iter(|| batched_nms(black_box(&boxes_20), &scores_20, &classes_20, 0.45))
    });
    heavy.finish();
}

criterion_group!(benches, geometry);
criterion_main!(benches);
