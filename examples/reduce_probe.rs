//! Probes burn-wgpu's reductions along long axes (the Mesa loop-limit defect, docs/wgpu-reduce.md):
//! `cargo run --release --features wgpu --example reduce_probe`.
//!
//! Prints, for tensors of ones, what `sum_dim`, `mean_dim`, `sum` and ssd-model's `sum_dim_exact`
//! return, next to the exact answer.

use burn::tensor::{Device, DeviceKind, Tensor};
use ssd_model::reduce::sum_dim_exact;

fn first(t: Tensor<2>) -> f32 {
    t.into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN)
}

fn main() {
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    println!("device: {:?}", device.identity());
    println!(
        "{:>9} | {:>10} {:>12} {:>12} {:>10} {:>13}",
        "n", "sum_dim", "mean_dim*n", "sum_dim(0)", "sum()", "sum_dim_exact"
    );
    for n in [
        4_097usize, 16_384, 65_532, 65_533, 65_534, 65_535, 65_536, 65_537, 131_071, 262_144,
        720_000, 1_000_000,
    ] {
        let rows = Tensor::<2>::ones([2, n], &device);
        let cols = Tensor::<2>::ones([n, 2], &device);
        let mean = first(rows.clone().mean_dim(1)) * n as f32;
        let all = first(rows.clone().sum().reshape([1, 1]));
        println!(
            "{n:>9} | {:>10} {:>12} {:>12} {:>10} {:>13}",
            first(rows.clone().sum_dim(1)),
            mean,
            first(cols.sum_dim(0)),
            all,
            first(sum_dim_exact(rows, 1)),
        );
    }
}
