//! SSDLite on MobileNetV3-Large, layer for layer as torchvision's `ssdlite320_mobilenet_v3_large`
//! (`torchvision/models/detection/ssdlite.py`, `torchvision/models/mobilenetv3.py`):
//!
//! - MobileNetV3-Large's features: a 3x3 stride-2 stem (hard-swish), fifteen inverted residual
//!   blocks (1x1 expansion, kxk depthwise, squeeze-excitation where the paper has it — average
//!   pool, 1x1 conv, ReLU, 1x1 conv, hard-sigmoid —, 1x1 projection; a residual where the stride
//!   is 1 and the widths agree) and a 1x1 conv to six times the last width (hard-swish); batch
//!   norm with eps 0.001 after every conv but the squeeze-excitation's;
//! - the sources: the C4 block's expansion (672 channels, stride 16) and the end (C5);
//! - four extra blocks (1x1 to half, 3x3 depthwise stride 2, 1x1; batch norm and ReLU6 each);
//! - depthwise-separable heads: 3x3 depthwise (batch norm, ReLU6), then a 1x1 conv with bias.
//!
//! Parameter names are this module's own; `weights.rs` maps torchvision's state dict onto them.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::{relu, relu6};
use burn::tensor::{Device, Tensor};

use crate::{BatchNorm, MobileNetV3Base, SsdConfig};

/// The activation after a batch norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    None,
    Relu,
    Relu6,
    HardSwish,
}

impl Act {
    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Act::None => x,
            Act::Relu => relu(x),
            Act::Relu6 => relu6(x),
            Act::HardSwish => hard_swish(x),
        }
    }
}

/// PyTorch's `Hardsigmoid`: `relu6(x + 3) / 6`. Written out rather than Burn's
/// `hard_sigmoid(x, 1/6, 0.5)`, whose differentiable form computes in float32 whatever the
/// tensor's type: the same formula as PyTorch, in the tensor's own precision.
fn hard_sigmoid(x: Tensor<4>) -> Tensor<4> {
    relu6(x.add_scalar(3.0)).div_scalar(6.0)
}

/// PyTorch's `Hardswish`: `x * relu6(x + 3) / 6`.
fn hard_swish(x: Tensor<4>) -> Tensor<4> {
    x.clone().mul(hard_sigmoid(x))
}

/// A conv without bias and its batch norm (torchvision's `Conv2dNormActivation`; the activation
/// is the caller's).
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution (padding `(kernel - 1) / 2`).
    pub conv: Conv2d,
    /// Its batch norm (eps 0.001).
    pub bn: BatchNorm,
}

/// Batch norm epsilon of MobileNetV3 and the SSDLite layers (torchvision's `eps=0.001`).
pub const LITE_BN_EPS: f64 = 0.001;
/// Batch norm momentum of SSDLite (torchvision's `momentum=0.03`, PyTorch's convention).
pub const LITE_BN_MOMENTUM: f64 = 0.03;

/// How a conv's weights start, as torchvision initialises SSDLite: He normal over PyTorch's
/// fan-out (`out x k x k`, whatever the groups) in MobileNetV3, normal with std 0.03 in the extra
/// blocks and heads; biases zero.
#[derive(Debug, Clone, Copy)]
enum Init {
    FanOut,
    Normal(f64),
}

/// A `kernel x kernel` conv with "same" padding.
fn conv(
    device: &Device,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    bias: bool,
    init: Init,
) -> Conv2d {
    let std = match init {
        Init::FanOut => (2.0 / (channels[1] * kernel * kernel) as f64).sqrt(),
        Init::Normal(std) => std,
    };
    let pad = (kernel - 1) / 2;
    let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device);
    conv.bias = conv
        .bias
        .map(|_| Param::from_tensor(Tensor::zeros([channels[1]], device)));
    conv
}

impl ConvBn {
    fn new(
        device: &Device,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        init: Init,
    ) -> Self {
        Self {
            conv: conv(device, channels, kernel, stride, groups, false, init),
            bn: BatchNorm::new(channels[1], LITE_BN_EPS, LITE_BN_MOMENTUM, device),
        }
    }

    fn forward(&self, x: Tensor<4>, act: Act) -> Tensor<4> {
        act.apply(self.bn.forward(self.conv.forward(x)))
    }
}

/// Squeeze-excitation: `x * hard_sigmoid(fc2(relu(fc1(mean_hw(x)))))`.
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    /// 1x1 conv to the squeezed width (with bias).
    pub fc1: Conv2d,
    /// 1x1 conv back to the input width (with bias).
    pub fc2: Conv2d,
}

impl SqueezeExcitation {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let scale = x.clone().mean_dim(3).mean_dim(2);
        let scale = self.fc2.forward(relu(self.fc1.forward(scale)));
        x.mul(hard_sigmoid(scale))
    }
}

/// One row of MobileNetV3-Large's table: input, kernel, expanded and output widths,
/// squeeze-excitation, hard-swish (else ReLU), stride.
#[derive(Debug, Clone, Copy)]
struct BlockRow {
    input: usize,
    kernel: usize,
    expanded: usize,
    output: usize,
    se: bool,
    hard_swish: bool,
    stride: usize,
}

/// MobileNetV3-Large's fifteen blocks (the paper's Table 1, torchvision's
/// `_mobilenet_v3_conf`): the last three halved with the reduced tail, every width times
/// `width_mult` rounded to a multiple of 8.
fn mobilenet_v3_large(reduced_tail: bool, width_mult: f64) -> Vec<BlockRow> {
    let d = if reduced_tail { 2 } else { 1 };
    let w = |c: usize| adjust_channels(c, width_mult);
    let row = |input, kernel, expanded, output, se, hard_swish, stride| BlockRow {
        input: w(input),
        kernel,
        expanded: w(expanded),
        output: w(output),
        se,
        hard_swish,
        stride,
    };
    vec![
        row(16, 3, 16, 16, false, false, 1),
        row(16, 3, 64, 24, false, false, 2),
        row(24, 3, 72, 24, false, false, 1),
        row(24, 5, 72, 40, true, false, 2),
        row(40, 5, 120, 40, true, false, 1),
        row(40, 5, 120, 40, true, false, 1),
        row(40, 3, 240, 80, false, true, 2),
        row(80, 3, 200, 80, false, true, 1),
        row(80, 3, 184, 80, false, true, 1),
        row(80, 3, 184, 80, false, true, 1),
        row(80, 3, 480, 112, true, true, 1),
        row(112, 3, 672, 112, true, true, 1),
        row(112, 5, 672, 160 / d, true, true, 2),
        row(160 / d, 5, 960 / d, 160 / d, true, true, 1),
        row(160 / d, 5, 960 / d, 160 / d, true, true, 1),
    ]
}

/// MobileNetV3-Large's inverted residual blocks.
pub(crate) const BLOCKS: usize = 15;

/// The index (among the blocks) of C4's block, whose expansion is SSDLite's first source.
pub(crate) const C4_BLOCK: usize = 12;

/// `v` rounded to a multiple of 8, at least 8 and not more than 10% below `v` (torchvision's
/// `_make_divisible`).
fn make_divisible(v: f64) -> usize {
    let rounded = (((v + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

/// A width of MobileNetV3's table at `width_mult` (torchvision's `adjust_channels`).
pub(crate) fn adjust_channels(channels: usize, width_mult: f64) -> usize {
    make_divisible(channels as f64 * width_mult)
}

/// Channels out of the C4 blocks: 160 (80 with the reduced tail), times the width.
pub(crate) fn c4_channels(reduced_tail: bool, width_mult: f64) -> usize {
    adjust_channels(if reduced_tail { 80 } else { 160 }, width_mult)
}

/// Channels of C4's expansion, SSDLite's first source: 672 times the width.
pub(crate) fn c4_expansion(width_mult: f64) -> usize {
    adjust_channels(672, width_mult)
}

/// An inverted residual block.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1x1 expansion, absent where the expanded width is the input's.
    pub expand: Option<ConvBn>,
    /// kxk depthwise.
    pub depthwise: ConvBn,
    /// Squeeze-excitation, where the table has it.
    pub se: Option<SqueezeExcitation>,
    /// 1x1 projection (no activation).
    pub project: ConvBn,
    #[module(skip)]
    hard_swish: bool,
    #[module(skip)]
    residual: bool,
}

impl InvertedResidual {
    /// Whether the block's activations are hard-swish (else ReLU).
    pub fn hard_swish(&self) -> bool {
        self.hard_swish
    }

    /// Whether the block adds its input to its output.
    pub fn is_residual(&self) -> bool {
        self.residual
    }

    fn new(device: &Device, r: BlockRow) -> Self {
        let se = r.se.then(|| {
            let squeeze = make_divisible((r.expanded / 4) as f64);
            SqueezeExcitation {
                fc1: conv(device, [r.expanded, squeeze], 1, 1, 1, true, Init::FanOut),
                fc2: conv(device, [squeeze, r.expanded], 1, 1, 1, true, Init::FanOut),
            }
        });
        Self {
            expand: (r.expanded != r.input)
                .then(|| ConvBn::new(device, [r.input, r.expanded], 1, 1, 1, Init::FanOut)),
            depthwise: ConvBn::new(
                device,
                [r.expanded, r.expanded],
                r.kernel,
                r.stride,
                r.expanded,
                Init::FanOut,
            ),
            se,
            project: ConvBn::new(device, [r.expanded, r.output], 1, 1, 1, Init::FanOut),
            hard_swish: r.hard_swish,
            residual: r.stride == 1 && r.input == r.output,
        }
    }

    fn act(&self) -> Act {
        if self.hard_swish {
            Act::HardSwish
        } else {
            Act::Relu
        }
    }

    /// The expansion alone (the whole input when there is none).
    fn expanded(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.expand {
            Some(e) => e.forward(x, self.act()),
            None => x,
        }
    }

    /// The rest of the block after the expansion; `input` for the residual.
    fn after_expansion(&self, e: Tensor<4>, input: Tensor<4>) -> Tensor<4> {
        let mut y = self.depthwise.forward(e, self.act());
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let y = self.project.forward(y, Act::None);
        if self.residual { y.add(input) } else { y }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let e = self.expanded(x.clone());
        self.after_expansion(e, x)
    }
}

/// MobileNetV3-Large's features.
#[derive(Module, Debug)]
pub struct MobileNetV3 {
    /// 3x3 stride-2 conv to 16 channels (hard-swish).
    pub stem: ConvBn,
    /// The fifteen inverted residual blocks.
    pub blocks: Vec<InvertedResidual>,
    /// 1x1 conv to six times the last width (hard-swish).
    pub last: ConvBn,
}

impl MobileNetV3 {
    fn new(device: &Device, base: &MobileNetV3Base) -> Self {
        let rows = mobilenet_v3_large(base.reduced_tail, base.width_mult);
        let out = rows.last().map_or(0, |r| r.output);
        let stem = rows.first().map_or(16, |r| r.input);
        Self {
            stem: ConvBn::new(device, [3, stem], 3, 2, 1, Init::FanOut),
            blocks: rows
                .into_iter()
                .map(|r| InvertedResidual::new(device, r))
                .collect(),
            last: ConvBn::new(device, [out, 6 * out], 1, 1, 1, Init::FanOut),
        }
    }

    /// The two sources: C4's expansion and C5.
    fn sources(&self, images: Tensor<4>) -> [Tensor<4>; 2] {
        let mut x = self.stem.forward(images, Act::HardSwish);
        for block in &self.blocks[..C4_BLOCK] {
            x = block.forward(x);
        }
        let c4 = &self.blocks[C4_BLOCK];
        let tap = c4.expanded(x.clone());
        let mut x = c4.after_expansion(tap.clone(), x);
        for block in &self.blocks[C4_BLOCK + 1..] {
            x = block.forward(x);
        }
        [tap, self.last.forward(x, Act::HardSwish)]
    }
}

/// torchvision's `_normal_init` of SSDLite's extra blocks and heads.
const HEAD_INIT: Init = Init::Normal(0.03);

/// An extra block: 1x1 to half the width, 3x3 depthwise stride 2, 1x1 (ReLU6 each).
#[derive(Module, Debug)]
pub struct ExtraBlock {
    /// 1x1 to half the output width.
    pub reduce: ConvBn,
    /// 3x3 depthwise, stride 2.
    pub depthwise: ConvBn,
    /// 1x1 to the output width.
    pub expand: ConvBn,
}

impl ExtraBlock {
    fn new(device: &Device, input: usize, output: usize) -> Self {
        let half = output / 2;
        Self {
            reduce: ConvBn::new(device, [input, half], 1, 1, 1, HEAD_INIT),
            depthwise: ConvBn::new(device, [half, half], 3, 2, half, HEAD_INIT),
            expand: ConvBn::new(device, [half, output], 1, 1, 1, HEAD_INIT),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.reduce.forward(x, Act::Relu6);
        let x = self.depthwise.forward(x, Act::Relu6);
        self.expand.forward(x, Act::Relu6)
    }
}

/// A depthwise-separable prediction block: 3x3 depthwise (batch norm, ReLU6), then a 1x1 conv.
#[derive(Module, Debug)]
pub struct PredictionBlock {
    /// 3x3 depthwise.
    pub depthwise: ConvBn,
    /// 1x1 to the outputs (with bias).
    pub output: Conv2d,
}

impl PredictionBlock {
    fn new(device: &Device, input: usize, output: usize) -> Self {
        Self {
            depthwise: ConvBn::new(device, [input, input], 3, 1, input, HEAD_INIT),
            output: conv(device, [input, output], 1, 1, 1, true, HEAD_INIT),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.output.forward(self.depthwise.forward(x, Act::Relu6))
    }
}

/// SSDLite on MobileNetV3-Large.
#[derive(Module, Debug)]
pub struct LiteSsd {
    /// MobileNetV3-Large's features.
    pub backbone: MobileNetV3,
    /// The extra blocks.
    pub extras: Vec<ExtraBlock>,
    /// Box regression heads, one per source: `boxes x 4` outputs.
    pub loc: Vec<PredictionBlock>,
    /// Classification heads, one per source: `boxes x num_classes` outputs.
    pub conf: Vec<PredictionBlock>,
    #[module(skip)]
    pub(crate) num_classes: usize,
    #[module(skip)]
    pub(crate) num_priors: usize,
}

impl LiteSsd {
    pub(crate) fn new(config: &SsdConfig, base: &MobileNetV3Base, device: &Device) -> Self {
        let mut extras = Vec::with_capacity(base.extras.len());
        let mut channels = base.c5_channels();
        for &out in &base.extras {
            extras.push(ExtraBlock::new(device, channels, out));
            channels = out;
        }
        let boxes = config.priors.boxes_per_location();
        let (mut loc, mut conf) = (Vec::new(), Vec::new());
        for (c, b) in config.source_channels().into_iter().zip(boxes) {
            loc.push(PredictionBlock::new(device, c, b * 4));
            conf.push(PredictionBlock::new(device, c, b * config.num_classes));
        }
        Self {
            backbone: MobileNetV3::new(device, base),
            extras,
            loc,
            conf,
            num_classes: config.num_classes,
            num_priors: config.num_priors(),
        }
    }

    /// The source feature maps: C4's expansion, C5, then each extra block's output.
    pub fn sources(&self, images: Tensor<4>) -> Vec<Tensor<4>> {
        let [c4, c5] = self.backbone.sources(images);
        let mut sources = vec![c4, c5.clone()];
        let mut x = c5;
        for block in &self.extras {
            x = block.forward(x);
            sources.push(x.clone());
        }
        sources
    }

    /// Each head's output per source.
    pub(crate) fn heads(&self, images: Tensor<4>) -> (Vec<Tensor<4>>, Vec<Tensor<4>>) {
        crate::model::run_heads(
            self.sources(images),
            &self.loc,
            &self.conf,
            PredictionBlock::forward,
        )
    }

    /// The device of the weights.
    pub(crate) fn device(&self) -> Device {
        self.backbone.stem.conv.weight.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeeze_widths_are_torchvisions() {
        // torchvision's SE widths for the expanded widths of MobileNetV3-Large.
        for (expanded, squeeze) in [
            (72, 24),
            (120, 32),
            (480, 120),
            (672, 168),
            (960, 240),
            (480, 120),
        ] {
            assert_eq!(make_divisible((expanded / 4) as f64), squeeze, "{expanded}");
        }
    }

    fn std_and_max(t: Tensor<4>) -> (f64, f64) {
        let v: Vec<f64> = t.into_data().iter::<f64>().collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        (var.sqrt(), v.iter().fold(0.0, |m, x| m.max(x.abs())))
    }

    #[test]
    fn initial_weights_are_torchvisions() {
        let device = Device::flex();
        let config = SsdConfig::ssdlite320(21);
        let crate::BaseConfig::MobilenetV3(base) = &config.base else {
            unreachable!("a MobileNetV3 preset")
        };
        let net = LiteSsd::new(&config, base, &device);
        // He normal over PyTorch's fan-out, groups or not: the 672-wide 5x5 depthwise of C4.
        let depthwise = net.backbone.blocks[C4_BLOCK].depthwise.conv.weight.val();
        let (std, _) = std_and_max(depthwise);
        let want = (2.0f64 / (672.0 * 25.0)).sqrt();
        assert!((std / want - 1.0).abs() < 0.05, "{std} vs {want}");
        // Extras and heads: normal with std 0.03, zero biases.
        let (std, _) = std_and_max(net.conf[0].output.weight.val());
        assert!((std / 0.03 - 1.0).abs() < 0.05, "{std}");
        let bias = net.conf[0].output.bias.as_ref().expect("bias").val();
        assert!(bias.abs().max().into_scalar::<f32>() == 0.0);
    }
}
