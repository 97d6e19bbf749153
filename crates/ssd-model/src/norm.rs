//! Batch norm with PyTorch's running statistics.
//!
//! Burn's `BatchNorm` feeds the running variance the batch's biased (population) variance;
//! PyTorch's `BatchNorm2d` feeds it the unbiased one (`n / (n - 1)` times larger, `n` the values
//! per channel). On SSDLite's last maps (2x2 and 1x1 at 320 pixels) `n` is a few times the batch,
//! so the two drift far apart within an epoch, and a network trained here would not evaluate as
//! the same network trained in PyTorch. This module keeps Burn's record layout (the same field
//! names, so checkpoints are interchangeable) and Burn's fused training kernel, and updates the
//! running variance as PyTorch does.

use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

/// Batch normalisation over the channels of `[batch, channels, ...]`, with PyTorch's running
/// statistics: `running = (1 - momentum) * running + momentum * batch`, the batch variance
/// unbiased (biased where a channel has a single value, which PyTorch refuses to train on).
///
/// Training behaviour (batch statistics, running statistics updated) on an autodiff device unless
/// the module was put in evaluation mode (`valid()`); the running statistics otherwise.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// The learnable scale (PyTorch's `weight`).
    pub gamma: Param<Tensor<1>>,
    /// The learnable shift (PyTorch's `bias`).
    pub beta: Param<Tensor<1>>,
    /// Whether training behaviour is enabled for this layer.
    pub training: Param<Flag>,
    /// The running mean.
    pub running_mean: RunningState<Tensor<1>>,
    /// The running variance (unbiased batch variances).
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the batch statistics in the running ones (PyTorch's convention).
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl BatchNorm {
    /// A batch norm over `channels` with scale 1, shift 0, running mean 0 and variance 1.
    pub fn new(channels: usize, epsilon: f64, momentum: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum,
            epsilon,
        }
    }

    /// Normalises `input` (`[batch, channels, ...]`).
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if input.device().is_autodiff() && self.training.is_enabled() {
            self.forward_train(input)
        } else {
            let device = input.device();
            burn::tensor::module::batch_norm(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.epsilon,
            )
        }
    }

    fn forward_train<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        let dims = input.dims();
        let per_channel: usize = dims.iter().product::<usize>() / dims[1].max(1);
        let unbias = if per_channel > 1 {
            per_channel as f64 / (per_channel - 1) as f64
        } else {
            1.0
        };
        let result = burn::tensor::module::batch_norm_train(
            input,
            self.gamma.val(),
            self.beta.val(),
            self.epsilon,
        );
        let m = self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(result.mean.detach().mul_scalar(m));
        let var = self
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(result.variance.detach().mul_scalar(m * unbias));
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        result.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// What `nn.BatchNorm2d(2, momentum=0.5)` does in training: running mean `0.5 * 0 + 0.5 *
    /// mean`, running variance `0.5 * 1 + 0.5 * unbiased variance`.
    #[test]
    fn running_variance_is_unbiased_as_in_pytorch() {
        let device = Device::flex().autodiff();
        let bn = BatchNorm::new(2, 1e-5, 0.5, &device);
        // Channel 0: 1, 2, 3, 4 (mean 2.5, unbiased var 5/3); channel 1: -1, -1, -1, -1.
        let x = Tensor::<4>::from_data(
            TensorData::new(
                vec![1.0f32, 2.0, -1.0, -1.0, 3.0, 4.0, -1.0, -1.0],
                [2, 2, 2, 1],
            ),
            &device,
        );
        let _ = bn.forward(x);
        let mean = bn
            .running_mean
            .value_sync()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let var = bn
            .running_var
            .value_sync()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(
            (mean[0] - 1.25).abs() < 1e-6 && (mean[1] + 0.5).abs() < 1e-6,
            "{mean:?}"
        );
        let want = 0.5 + 0.5 * 5.0 / 3.0;
        assert!((var[0] - want).abs() < 1e-5, "{var:?} vs {want}");
        assert!((var[1] - 0.5).abs() < 1e-6, "{var:?}");
    }

    #[test]
    fn evaluation_uses_the_running_statistics() {
        let device = Device::flex();
        let bn = BatchNorm::new(1, 0.0, 0.1, &device);
        let x = Tensor::<4>::from_data(TensorData::new(vec![3.0f32, 5.0], [1, 1, 2, 1]), &device);
        let y = bn.forward(x).into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(y, vec![3.0, 5.0]);
    }
}
