//! Sums that stay exact on every backend, including burn-wgpu on Mesa's software renderers.
//!
//! Mesa's llvmpipe/lavapipe (gallivm) stops every shader loop after 65,535 iterations in total
//! (`LP_MAX_TGSI_LOOP_ITERATIONS`, a compile-time constant meant to stop runaway shaders), and
//! burn-wgpu 0.22.1's `sum_dim`/`mean_dim` loop over the reduced axis in a single invocation
//! (65,535 iterations of up to 4 values each). So on those renderers a reduction along an
//! axis longer than 65,534 elements silently drops the rest: a million ones sum to 262,128.
//! Real GPUs have no such limit. [`sum_dim_exact`] splits long axes into chunks of at most
//! [`MAX_AXIS_CHUNK`] so that each reduction kernel stays far below the limit; on every other
//! backend it gives the same numbers as `sum_dim` (up to summation order).
//! See `docs/wgpu-reduce.md`.

use burn::tensor::Tensor;

/// Longest axis reduced by a single `sum_dim` in [`sum_dim_exact`] (2^15: a kernel loops at most
/// 32,768 times even without vectorisation, half of Mesa's 65,535).
pub const MAX_AXIS_CHUNK: usize = 1 << 15;

/// `x.sum_dim(dim)` (the result keeps `dim` with size 1), exact on every backend for axes of any
/// length: an axis longer than [`MAX_AXIS_CHUNK`] is zero-padded to a multiple of it, summed chunk
/// by chunk, and the partial sums summed again (recursively).
///
/// # Panics
///
/// If `dim >= D`, as `sum_dim` does.
pub fn sum_dim_exact<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let dims = x.dims();
    let len = dims[dim];
    if len <= MAX_AXIS_CHUNK {
        return x.sum_dim(dim);
    }
    // Move `dim` last and flatten the rest: [rows, len].
    let last = D - 1;
    let moved = x.swap_dims(dim, last);
    let mut moved_dims = moved.dims();
    let rows = moved_dims[..last].iter().product::<usize>();
    let flat: Tensor<2> = moved.reshape([rows, len]);
    let summed = sum_rows_exact(flat); // [rows, 1]
    moved_dims[last] = 1;
    summed.reshape(moved_dims).swap_dims(dim, last)
}

/// Sum of every element, exact on every backend: `[1]`.
pub fn sum_exact<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let n = x.shape().num_elements();
    sum_rows_exact(x.reshape([1, n])).reshape([1])
}

/// Row sums of `[rows, len]` as `[rows, 1]`, in chunks of at most [`MAX_AXIS_CHUNK`].
fn sum_rows_exact(x: Tensor<2>) -> Tensor<2> {
    let [rows, len] = x.dims();
    if len <= MAX_AXIS_CHUNK {
        return x.sum_dim(1);
    }
    let chunks = len.div_ceil(MAX_AXIS_CHUNK);
    let padded_len = chunks * MAX_AXIS_CHUNK;
    let x = if padded_len == len {
        x
    } else {
        let zeros = Tensor::<2>::zeros([rows, padded_len - len], &x.device());
        Tensor::cat(vec![x, zeros], 1)
    };
    let partial: Tensor<3> = x.reshape([rows, chunks, MAX_AXIS_CHUNK]).sum_dim(2);
    sum_rows_exact(partial.reshape([rows, chunks]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap_or_default()
    }

    /// Small integers, so every summation order gives the exact same f32.
    fn ints(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect()
    }

    #[test]
    fn long_axis_matches_plain_sum_dim() {
        let device = Device::flex();
        let (rows, len) = (3, 3 * MAX_AXIS_CHUNK + 123);
        let x = Tensor::<2>::from_data(TensorData::new(ints(rows * len), [rows, len]), &device);
        assert_eq!(
            host(sum_dim_exact(x.clone(), 1)),
            host(x.clone().sum_dim(1))
        );
        assert_eq!(sum_dim_exact(x.clone(), 1).dims(), [rows, 1]);
        assert_eq!(host(sum_exact(x.clone())), host(x.sum()));
    }

    #[test]
    fn middle_axis_keeps_layout() {
        let device = Device::flex();
        let shape = [2, MAX_AXIS_CHUNK + 5, 3];
        let n = shape.iter().product();
        let x = Tensor::<3>::from_data(TensorData::new(ints(n), shape), &device);
        let got = sum_dim_exact(x.clone(), 1);
        assert_eq!(got.dims(), [2, 1, 3]);
        assert_eq!(host(got), host(x.sum_dim(1)));
    }

    #[test]
    fn short_axes_are_plain_sum_dim() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(ints(12), [3, 4]), &device);
        assert_eq!(host(sum_dim_exact(x.clone(), 0)), host(x.sum_dim(0)));
    }

    #[test]
    fn gradients_flow_through_the_chunks() {
        let device = Device::flex().autodiff();
        let len = 2 * MAX_AXIS_CHUNK + 7;
        let x =
            Tensor::<2>::from_data(TensorData::new(ints(len), [1, len]), &device).require_grad();
        let grads = sum_exact(x.clone() * 2.0).backward();
        let g = host(x.grad(&grads).expect("x has a gradient"));
        assert_eq!(g.len(), len);
        assert!(g.iter().all(|&v| v == 2.0));
    }
}
