//! SSD300 on ResNet, as NVIDIA's SSD300 v1.1 (DeepLearningExamples `PyTorch/Detection/SSD`):
//!
//! - torchvision's ResNet up to `layer3`: a 7x7 stride-2 stem with batch norm and ReLU, a 3x3
//!   stride-2 max-pool, then bottleneck blocks (1x1, 3x3 with the block's stride, 1x1 to four
//!   times the width; batch norm after each, ReLU after the first two and after the residual sum;
//!   a 1x1 projection with batch norm on the shortcut where the stride or width changes).
//!   `layer2`'s first block has stride 2; `layer3`'s has stride 1 (NVIDIA's change to
//!   torchvision's ResNet-50), so its output is the first source at stride 8;
//! - extra layers in pairs (1x1 reduce, 3x3 source), each conv without bias and followed by
//!   batch norm and ReLU;
//! - plain 3x3 heads with bias.
//!
//! Parameter names are torchvision's ResNet's for the base (`layers.0` is `layer1`) and this
//! module's own elsewhere; `weights.rs` maps NVIDIA's and torchvision's state dicts onto them.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};

use crate::lite::ConvBn;
use crate::{BatchNorm, ResNetBase, SsdConfig};

/// Batch norm epsilon of ResNet and NVIDIA's extra layers (PyTorch's default).
pub const RESNET_BN_EPS: f64 = 1e-5;
/// Batch norm momentum (PyTorch's default, PyTorch's convention).
pub const RESNET_BN_MOMENTUM: f64 = 0.1;

/// How a conv's weights start: He normal over PyTorch's fan-out in the ResNet (torchvision's
/// `kaiming_normal_(mode="fan_out")`), Xavier uniform in the extras and heads (NVIDIA's
/// `_init_weights`).
#[derive(Debug, Clone, Copy)]
enum Init {
    FanOut,
    Xavier,
}

fn conv(
    device: &Device,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    init: Init,
) -> Conv2d {
    let initializer = match init {
        Init::FanOut => Initializer::Normal {
            mean: 0.0,
            std: (2.0 / (channels[1] * kernel * kernel) as f64).sqrt(),
        },
        Init::Xavier => Initializer::XavierUniform { gain: 1.0 },
    };
    let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(bias)
        .with_initializer(initializer)
        .init(device);
    // PyTorch's default bias: uniform over +-1/sqrt(fan_in), which NVIDIA's init leaves alone.
    let bound = 1.0 / ((channels[0] * kernel * kernel) as f64).sqrt();
    conv.bias = conv.bias.map(|_| {
        Param::from_tensor(Tensor::random(
            [channels[1]],
            Distribution::Uniform(-bound, bound),
            device,
        ))
    });
    conv
}

fn conv_bn(
    device: &Device,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    init: Init,
) -> ConvBn {
    ConvBn {
        conv: conv(device, channels, kernel, stride, padding, false, init),
        bn: BatchNorm::new(channels[1], RESNET_BN_EPS, RESNET_BN_MOMENTUM, device),
    }
}

fn bn_conv(layer: &ConvBn, x: Tensor<4>) -> Tensor<4> {
    layer.bn.forward(layer.conv.forward(x))
}

/// torchvision's ResNet v1.5 bottleneck: `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))
/// + shortcut(x))`, the stride on the 3x3 conv.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 to the block's width.
    pub conv1: ConvBn,
    /// 3x3 with the block's stride.
    pub conv2: ConvBn,
    /// 1x1 to four times the width.
    pub conv3: ConvBn,
    /// 1x1 projection of the input where the stride or width changes (torchvision's
    /// `downsample`).
    pub downsample: Option<ConvBn>,
}

impl Bottleneck {
    fn new(device: &Device, input: usize, width: usize, stride: usize) -> Self {
        let out = 4 * width;
        Self {
            conv1: conv_bn(device, [input, width], 1, 1, 0, Init::FanOut),
            conv2: conv_bn(device, [width, width], 3, stride, 1, Init::FanOut),
            conv3: conv_bn(device, [width, out], 1, 1, 0, Init::FanOut),
            downsample: (stride != 1 || input != out)
                .then(|| conv_bn(device, [input, out], 1, stride, 0, Init::FanOut)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(bn_conv(&self.conv1, x.clone()));
        let y = relu(bn_conv(&self.conv2, y));
        let y = bn_conv(&self.conv3, y);
        let shortcut = match &self.downsample {
            Some(d) => bn_conv(d, x),
            None => x,
        };
        relu(y.add(shortcut))
    }
}

/// The ResNet SSD: the ResNet's stem and three layers, the extra layers and the heads.
#[derive(Module, Debug)]
pub struct ResNetSsd {
    /// conv1 (7x7, stride 2) and bn1.
    pub stem: ConvBn,
    /// `layer1`, `layer2`, `layer3`.
    pub layers: Vec<Vec<Bottleneck>>,
    /// Extra layers, in (reduce, source) pairs, each with its batch norm.
    pub extras: Vec<ConvBn>,
    /// Box regression heads, one per source: `boxes x 4` channels.
    pub loc: Vec<Conv2d>,
    /// Classification heads, one per source: `boxes x num_classes` channels.
    pub conf: Vec<Conv2d>,
    #[module(skip)]
    pub(crate) num_classes: usize,
    #[module(skip)]
    pub(crate) num_priors: usize,
}

impl ResNetSsd {
    pub(crate) fn new(config: &SsdConfig, base: &ResNetBase, device: &Device) -> Self {
        let w = base.width;
        let mut layers = Vec::with_capacity(base.blocks.len());
        let mut channels = w;
        for (l, &blocks) in base.blocks.iter().enumerate() {
            let width = w << l;
            let stride = if l == 1 { 2 } else { 1 };
            let mut layer = Vec::with_capacity(blocks);
            for b in 0..blocks {
                layer.push(Bottleneck::new(
                    device,
                    channels,
                    width,
                    if b == 0 { stride } else { 1 },
                ));
                channels = 4 * width;
            }
            layers.push(layer);
        }
        let mut extras = Vec::with_capacity(base.extras.len());
        for e in &base.extras {
            extras.push(conv_bn(
                device,
                [channels, e.channels],
                e.kernel,
                e.stride,
                e.padding,
                Init::Xavier,
            ));
            channels = e.channels;
        }
        let boxes = config.priors.boxes_per_location();
        let (mut loc, mut conf) = (Vec::new(), Vec::new());
        for (c, b) in config.source_channels().into_iter().zip(boxes) {
            loc.push(conv(device, [c, b * 4], 3, 1, 1, true, Init::Xavier));
            conf.push(conv(
                device,
                [c, b * config.num_classes],
                3,
                1,
                1,
                true,
                Init::Xavier,
            ));
        }
        Self {
            stem: conv_bn(device, [3, w], 7, 2, 3, Init::FanOut),
            layers,
            extras,
            loc,
            conf,
            num_classes: config.num_classes,
            num_priors: config.num_priors(),
        }
    }

    /// The source feature maps: `layer3`'s output, then each extra pair's.
    pub fn sources(&self, images: Tensor<4>) -> Vec<Tensor<4>> {
        let x = relu(bn_conv(&self.stem, images));
        let mut x = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init()
            .forward(x);
        for block in self.layers.iter().flatten() {
            x = block.forward(x);
        }
        let mut sources = Vec::with_capacity(self.loc.len());
        sources.push(x.clone());
        for (i, layer) in self.extras.iter().enumerate() {
            x = relu(bn_conv(layer, x));
            if i % 2 == 1 {
                sources.push(x.clone());
            }
        }
        sources
    }

    /// Each head's output for `images`: `[N, A*4, H, W]` and `[N, A*C, H, W]` per source.
    pub(crate) fn heads(&self, images: Tensor<4>) -> (Vec<Tensor<4>>, Vec<Tensor<4>>) {
        crate::model::run_heads(self.sources(images), &self.loc, &self.conf, Conv2d::forward)
    }

    pub(crate) fn device(&self) -> Device {
        self.stem.conv.weight.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_of(t: Tensor<4>) -> f64 {
        let v: Vec<f64> = t.into_data().iter::<f64>().collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    #[test]
    fn initial_weights_are_torchvisions_and_nvidias() {
        let device = Device::flex();
        let config = SsdConfig::ssd300_resnet50(81);
        let crate::BaseConfig::Resnet(base) = &config.base else {
            unreachable!("a ResNet preset")
        };
        let net = ResNetSsd::new(&config, base, &device);
        // He normal over the fan-out: layer3's first 3x3 (256 wide).
        let std = std_of(net.layers[2][0].conv2.conv.weight.val());
        let want = (2.0f64 / (256.0 * 9.0)).sqrt();
        assert!((std / want - 1.0).abs() < 0.05, "{std} vs {want}");
        // Xavier uniform in the heads: the first conf head, 1024 -> 4 x 81.
        let std = std_of(net.conf[0].weight.val());
        let want = (2.0f64 / ((1024.0 + 324.0) * 9.0)).sqrt();
        assert!((std / want - 1.0).abs() < 0.05, "{std} vs {want}");
        assert_eq!(
            net.layers.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 4, 6]
        );
        assert!(net.layers[2][0].downsample.is_some() && net.layers[2][1].downsample.is_none());
    }
}
