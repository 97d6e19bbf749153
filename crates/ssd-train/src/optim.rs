//! The optimizer recipe: SGD with momentum (dampening 0, as PyTorch and Caffe) and weight decay;
//! with `caffe-bias`, biases in a group of their own at twice the learning rate without weight
//! decay; global-norm gradient clipping computed on the device.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Tensor;
use ssd_model::Ssd;

use crate::TrainConfig;

/// SGD with momentum and weight decay as `config` says; with `caffe-bias`, the biases in a group
/// without weight decay (their doubled learning rate is set per step by [`lr_schedule`]).
pub fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let momentum = (config.momentum > 0.0).then(|| {
        MomentumConfig::new()
            .with_momentum(config.momentum)
            .with_dampening(0.0)
    });
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    let optimizer = SgdConfig::new()
        .with_momentum(momentum.clone())
        .with_weight_decay(decay)
        .init();
    if config.caffe_bias {
        let biases = SgdConfig::new().with_momentum(momentum).build();
        optimizer.with_group(bias_group(), biases, None)
    } else {
        optimizer
    }
}

/// Every conv bias (`....bias`), the parameters Caffe trains with `lr_mult: 2, decay_mult: 0`.
pub fn bias_group() -> ParamGroup {
    // A constant pattern: it always compiles.
    ParamGroup::from_regex(r"(^|\.)bias$").unwrap_or_else(|_| unreachable!("a valid regex"))
}

/// The learning rates of iteration `i` (0-based): the base group's from the schedule, the bias
/// group's twice that with `caffe-bias`.
pub fn lr_schedule(config: &TrainConfig, i: u64) -> ModuleLrScheduler {
    let lr = config.lr_at(i);
    let schedule = ModuleLrScheduler::new(lr);
    if config.caffe_bias {
        schedule.with_group(bias_group(), 2.0 * lr)
    } else {
        schedule
    }
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc.add(s),
                None => s,
            });
        }
    }
}

/// The global L2 norm of the gradients (what `torch.nn.utils.clip_grad_norm_` computes), as a
/// `[1]` tensor on the device: nothing is read back.
pub fn grad_norm(model: &Ssd, grads: &GradientsParams) -> Option<Tensor<1>> {
    let mut visitor = SquaredNorm { grads, sum: None };
    model.visit(&mut visitor);
    visitor.sum.map(Tensor::sqrt)
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: Tensor<1>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let factor = self.factor.clone().reshape([1; D]);
            self.grads.register(param.id, g.mul(factor));
        }
    }
}

/// Multiplies every gradient by `factor` (a `[1]` tensor on the device).
pub(crate) fn scale_grads(model: &Ssd, grads: &mut GradientsParams, factor: Tensor<1>) {
    model.visit(&mut Scale { grads, factor });
}

/// Clips the global gradient norm to `max_norm` on the device: every gradient times
/// `min(1, max_norm / (norm + 1e-6))`, PyTorch's `clip_grad_norm_`, so nothing is read back to
/// decide.
pub fn clip_grads(model: &Ssd, grads: &mut GradientsParams, norm: &Tensor<1>, max_norm: f64) {
    let factor = norm
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    scale_grads(model, grads, factor);
}

/// Whether every weight of `model` is finite (one value read back).
pub(crate) fn weights_finite(model: &Ssd) -> bool {
    struct NonFinite(Option<Tensor<1>>);
    impl ModuleVisitor for NonFinite {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            // x - x is 0 for finite x and NaN for NaN or infinity.
            let s = param.val().flatten::<1>(0, D - 1);
            let bad = s.clone().sub(s).abs().sum();
            self.0 = Some(match self.0.take() {
                Some(acc) => acc.add(bad),
                None => bad,
            });
        }
    }
    let mut visitor = NonFinite(None);
    model.visit(&mut visitor);
    visitor
        .0
        .is_none_or(|t| t.into_data().iter::<f32>().next().is_some_and(|v| v == 0.0))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use ssd_model::SsdConfig;

    use super::*;

    fn tiny() -> SsdConfig {
        let json = include_str!("../../../tests/fixtures/tiny_model.json");
        serde_json::from_str(json).unwrap_or_else(|e| panic!("tiny model: {e}"))
    }

    /// One SGD step with the Caffe groups: a bias moves by `2 lr g` (no decay), a weight by
    /// `lr (g + wd w)`; with `caffe-bias` off both by `lr (g + wd w)`.
    #[test]
    fn biases_get_twice_the_learning_rate_and_no_weight_decay() {
        let device = Device::flex().autodiff();
        for caffe_bias in [true, false] {
            let config = TrainConfig {
                momentum: 0.0,
                weight_decay: 0.1,
                caffe_bias,
                lr: 0.01,
                ..TrainConfig::default()
            };
            device.seed(1);
            let model = tiny().init(&device).expect("model");
            let input = Tensor::<4>::ones([1, 3, 64, 64], &device);
            let (loc, conf) = model.forward(input);
            let loss = loc.sum().add(conf.powi_scalar(2).sum());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let ssd_model::Ssd::Vgg(vgg) = &model else {
                unreachable!("a VGG network")
            };
            let conv = &vgg.conf[0];
            let bias = conv.bias.as_ref().expect("bias");
            let values = |t: Tensor<1>| t.into_data().iter::<f32>().collect::<Vec<f32>>();
            let (w0, b0) = (values(conv.weight.val().flatten(0, 3)), values(bias.val()));
            let gw = values(grads.get::<4>(conv.weight.id).expect("grad").flatten(0, 3));
            let gb = values(grads.get::<1>(bias.id).expect("grad"));
            let mut optimizer = build_optimizer(&config);
            let lr = 0.01;
            let model = optimizer.step(lr_schedule(&config, 0).step(), model, grads);
            let ssd_model::Ssd::Vgg(vgg) = &model else {
                unreachable!("a VGG network")
            };
            let conv = &vgg.conf[0];
            let w1 = values(conv.weight.val().flatten(0, 3));
            let b1 = values(conv.bias.as_ref().expect("bias").val());
            for i in 0..gb.len() {
                let expected = if caffe_bias {
                    b0[i] - 2.0 * lr as f32 * gb[i]
                } else {
                    b0[i] - lr as f32 * (gb[i] + 0.1 * b0[i])
                };
                assert!(
                    (b1[i] - expected).abs() < 1e-6,
                    "bias {i}: {} vs {expected}",
                    b1[i]
                );
            }
            for i in (0..gw.len()).step_by(97) {
                let expected = w0[i] - lr as f32 * (gw[i] + 0.1 * w0[i]);
                assert!(
                    (w1[i] - expected).abs() < 1e-6,
                    "weight {i}: {} vs {expected}",
                    w1[i]
                );
            }
            assert!(
                gb.iter().any(|g| g.abs() > 1e-3),
                "the test has gradients to see"
            );
        }
    }

    fn norm_value(model: &Ssd, grads: &GradientsParams) -> f32 {
        grad_norm(model, grads)
            .expect("gradients")
            .into_data()
            .iter::<f32>()
            .next()
            .expect("one value")
    }

    #[test]
    fn clipping_scales_every_gradient_to_the_bound_and_leaves_small_ones() {
        let device = Device::flex().autodiff();
        let model = tiny().init(&device).expect("model");
        let (loc, conf) = model.forward(Tensor::<4>::ones([1, 3, 64, 64], &device));
        let loss = loc.sum().add(conf.powi_scalar(2).sum());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let before = norm_value(&model, &grads);
        assert!(before > 0.0);
        let norm = grad_norm(&model, &grads).expect("gradients");
        clip_grads(&model, &mut grads, &norm, f64::from(before) * 0.25);
        let after = norm_value(&model, &grads);
        assert!(
            (after - 0.25 * before).abs() < 1e-4 * before,
            "{before} -> {after}"
        );
        let norm = grad_norm(&model, &grads).expect("gradients");
        clip_grads(&model, &mut grads, &norm, f64::from(after) * 2.0);
        let unchanged = norm_value(&model, &grads);
        assert!(
            (unchanged - after).abs() < 1e-5 * after,
            "{after} -> {unchanged}"
        );
    }

    #[test]
    fn non_finite_weights_are_found() {
        let device = Device::flex();
        let mut model = tiny().init(&device).expect("model");
        assert!(weights_finite(&model));
        let ssd_model::Ssd::Vgg(vgg) = &mut model else {
            unreachable!("a VGG network")
        };
        let bias = vgg.conf[0].bias.take().expect("bias");
        let poisoned = bias.val().mul_scalar(f32::INFINITY);
        vgg.conf[0].bias = Some(Param::from_tensor(poisoned));
        assert!(!weights_finite(&model));
    }
}
