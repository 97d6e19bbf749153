//! The SSD network: a base network that yields the source feature maps, extra layers, and the
//! multibox heads. [`Ssd`] is the seam: one variant per base network, each named as the model
//! it reproduces names its parameters (so that their checkpoints load by name), behind one
//! `forward` whose output layout every variant shares. Priors, loss, post-processing, the
//! detector, checkpoints, training, evaluation, export and serving see only [`Ssd`].

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::lite::LiteSsd;
use crate::resnet::ResNetSsd;
use crate::{BaseConfig, BatchNorm, ModelError, SsdConfig, VggBase};

/// Per-channel L2 normalisation with a learned scale (on conv4_3):
/// `y = x / sqrt(sum_c x^2 + eps) * scale[c]`, the epsilon inside the square root as in Caffe
/// (amdegroot adds it outside, which gives NaN gradients for an all-zero location).
#[derive(Module, Debug)]
pub struct L2Norm {
    /// The scale, `[C]`, initialised to 20.
    pub weight: Param<Tensor<1>>,
}

/// The epsilon of [`L2Norm`].
pub const L2NORM_EPS: f64 = 1e-10;

impl L2Norm {
    /// Normalises `[N, C, H, W]` over `C`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = self.weight.dims()[0];
        let norm = x
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .add_scalar(L2NORM_EPS)
            .sqrt();
        let scale = self.weight.val().reshape([1, channels, 1, 1]);
        x.div(norm).mul(scale)
    }
}

/// An SSD network: the base network, its extra layers and heads, one variant per base.
///
/// An enum rather than a trait object: Burn's modules (optimizers, checkpoints, device moves)
/// need a concrete type, and each variant keeps the parameter names of the model it reproduces
/// (enum variant names are left out of the names a PyTorch file is matched against), so a
/// published state dict is a key map away, often none.
#[derive(Module, Debug)]
// The variants differ in size (MobileNetV3 keeps its blocks' settings inline), but a network is
// built once and moved rarely, and Burn's `Module` has no implementation for `Box`.
#[allow(clippy::large_enum_variant)]
pub enum Ssd {
    /// VGG16 (SSD300, SSD512) or the small VGG with batch norm, in amdegroot's names.
    Vgg(VggSsd),
    /// SSDLite on MobileNetV3-Large (torchvision's `ssdlite320_mobilenet_v3_large`).
    Lite(LiteSsd),
    /// SSD300 on ResNet (NVIDIA's SSD300 v1.1).
    Resnet(ResNetSsd),
}

/// The paper's SSD on a VGG base (SSD300, SSD512 or the small preset; see [`SsdConfig`]).
///
/// Parameter names follow amdegroot's layout with contiguous indices, so its state dicts map onto
/// this module one to one: `vgg.0..14` (conv1_1 .. conv5_3, conv6, conv7), `l2norm.weight`,
/// `extras.0..`, `loc.0..`, `conf.0..`.
#[derive(Module, Debug)]
pub struct VggSsd {
    /// conv1_1 .. conv5_3, then conv6 (fc6) and conv7 (fc7).
    pub vgg: Vec<Conv2d>,
    /// With [`VggConfig::batch_norm`](crate::VggConfig::batch_norm): one batch norm after each
    /// conv of `vgg`, then one after each conv of `extras`, in that order; else empty.
    pub norms: Vec<BatchNorm>,
    /// L2Norm on conv4_3.
    pub l2norm: L2Norm,
    /// Extra layers, in (reduce, source) pairs.
    pub extras: Vec<Conv2d>,
    /// Box regression heads, one per source: `boxes x 4` channels.
    pub loc: Vec<Conv2d>,
    /// Classification heads, one per source: `boxes x num_classes` channels.
    pub conf: Vec<Conv2d>,
    #[module(skip)]
    pub(crate) layout: Layout,
}

/// The structure the forward pass needs besides the weights.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) blocks: Vec<usize>,
    ceil_pool_block: usize,
    source_block: usize,
    num_classes: usize,
    num_priors: usize,
}

fn conv(
    device: &Device,
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Conv2d {
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .init(device)
}

impl SsdConfig {
    /// Builds the network on `device` with Burn's default initialisation (Kaiming uniform; the
    /// L2Norm scale at [`VggBase::l2norm_scale`]). Fails if the configuration is inconsistent
    /// ([`SsdConfig::validate`]).
    pub fn init(&self, device: &Device) -> Result<Ssd, ModelError> {
        self.validate()?;
        Ok(match &self.base {
            BaseConfig::Vgg(base) => Ssd::Vgg(VggSsd::new(self, base, device)),
            BaseConfig::MobilenetV3(base) => Ssd::Lite(LiteSsd::new(self, base, device)),
            BaseConfig::Resnet(base) => Ssd::Resnet(ResNetSsd::new(self, base, device)),
        })
    }
}

impl VggSsd {
    fn new(config: &SsdConfig, base: &VggBase, device: &Device) -> Self {
        let mut vgg = Vec::new();
        let mut channels = 3;
        for block in &base.vgg.blocks {
            for &out in block {
                vgg.push(conv(device, channels, out, 3, 1, 1, 1));
                channels = out;
            }
        }
        let fc = base.vgg.fc_channels;
        let d = base.vgg.fc_dilation;
        vgg.push(conv(device, channels, fc, 3, 1, d, d));
        vgg.push(conv(device, fc, fc, 1, 1, 0, 1));
        let mut extras = Vec::new();
        let mut channels = fc;
        for e in &base.extras {
            extras.push(conv(
                device, channels, e.channels, e.kernel, e.stride, e.padding, 1,
            ));
            channels = e.channels;
        }
        let norms = if base.vgg.batch_norm {
            vgg.iter()
                .chain(&extras)
                .map(|c| BatchNorm::new(c.weight.dims()[0], 1e-5, 0.1, device))
                .collect()
        } else {
            Vec::new()
        };
        let boxes = config.priors.boxes_per_location();
        let (mut loc, mut conf) = (Vec::new(), Vec::new());
        for (c, b) in config.source_channels().into_iter().zip(boxes) {
            loc.push(conv(device, c, b * 4, 3, 1, 1, 1));
            conf.push(conv(device, c, b * config.num_classes, 3, 1, 1, 1));
        }
        let conv4_3 = config.source_channels()[0];
        let l2norm = L2Norm {
            weight: Param::from_tensor(Tensor::full([conv4_3], base.l2norm_scale, device)),
        };
        Self {
            vgg,
            norms,
            l2norm,
            extras,
            loc,
            conf,
            layout: Layout {
                blocks: base.vgg.blocks.iter().map(Vec::len).collect(),
                ceil_pool_block: base.vgg.ceil_pool_block,
                source_block: base.vgg.source_block,
                num_classes: config.num_classes,
                num_priors: config.num_priors(),
            },
        }
    }
}

impl Ssd {
    /// Classes including background (`C`).
    pub fn num_classes(&self) -> usize {
        match self {
            Ssd::Vgg(n) => n.layout.num_classes,
            Ssd::Lite(n) => n.num_classes,
            Ssd::Resnet(n) => n.num_classes,
        }
    }

    /// Priors (`P`).
    pub fn num_priors(&self) -> usize {
        match self {
            Ssd::Vgg(n) => n.layout.num_priors,
            Ssd::Lite(n) => n.num_priors,
            Ssd::Resnet(n) => n.num_priors,
        }
    }

    /// The source feature maps, in prior order.
    pub fn sources(&self, images: Tensor<4>) -> Vec<Tensor<4>> {
        match self {
            Ssd::Vgg(n) => n.sources(images),
            Ssd::Lite(n) => n.sources(images),
            Ssd::Resnet(n) => n.sources(images),
        }
    }

    /// `images [N, 3, S, S]` (normalised as [`SsdConfig::mean_rgb`] says) to `(loc [N, P, 4],
    /// conf [N, P, C])`: each head's `[N, A*K, H, W]` output permuted to `[N, H, W, A*K]`,
    /// reshaped to `[N, H*W*A, K]`, and the levels concatenated in order — the layout of
    /// amdegroot, lufficc and torchvision, matching [`ssd_core::PriorConfig::priors`]. `conf`
    /// holds logits (no softmax).
    pub fn forward(&self, images: Tensor<4>) -> (Tensor<3>, Tensor<3>) {
        let (locs, confs) = match self {
            Ssd::Vgg(n) => n.heads(images),
            Ssd::Lite(n) => n.heads(images),
            Ssd::Resnet(n) => n.heads(images),
        };
        let classes = self.num_classes();
        let locs = locs.into_iter().map(|t| flatten(t, 4)).collect();
        let confs = confs.into_iter().map(|t| flatten(t, classes)).collect();
        let loc = Tensor::cat(locs, 1);
        let conf = Tensor::cat(confs, 1);
        debug_assert_eq!(loc.dims()[1], self.num_priors());
        (loc, conf)
    }

    /// The VGG network, for what reads its layers (weight import, ONNX export).
    pub(crate) fn vgg(&self) -> Option<&VggSsd> {
        match self {
            Ssd::Vgg(n) => Some(n),
            Ssd::Lite(_) | Ssd::Resnet(_) => None,
        }
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        match self {
            Ssd::Vgg(n) => n.l2norm.weight.device(),
            Ssd::Lite(n) => n.device(),
            Ssd::Resnet(n) => n.device(),
        }
    }
}

/// Each source through its `loc` and `conf` head: the heads' outputs, level by level.
pub(crate) fn run_heads<H>(
    sources: Vec<Tensor<4>>,
    loc: &[H],
    conf: &[H],
    forward: impl Fn(&H, Tensor<4>) -> Tensor<4>,
) -> (Vec<Tensor<4>>, Vec<Tensor<4>>) {
    let mut locs = Vec::with_capacity(sources.len());
    let mut confs = Vec::with_capacity(sources.len());
    for ((s, l), c) in sources.into_iter().zip(loc).zip(conf) {
        locs.push(forward(l, s.clone()));
        confs.push(forward(c, s));
    }
    (locs, confs)
}

/// A head's `[N, A*K, H, W]` as `[N, H*W*A, K]`.
fn flatten(t: Tensor<4>, k: usize) -> Tensor<3> {
    let t = t.permute([0, 2, 3, 1]);
    let [n, h, w, c] = t.dims();
    t.reshape([n, h * w * c / k, k])
}

impl VggSsd {
    /// The source feature maps: L2-normalised conv4_3, conv7, then each extra pair's output.
    pub fn sources(&self, images: Tensor<4>) -> Vec<Tensor<4>> {
        let layout = &self.layout;
        let mut x = images;
        let mut convs = self.vgg.iter().chain(&self.extras).enumerate();
        let mut sources = Vec::with_capacity(self.loc.len());
        let last = layout.blocks.len() - 1;
        for (b, &n) in layout.blocks.iter().enumerate() {
            for (i, conv) in convs.by_ref().take(n) {
                x = self.conv_relu(i, conv, x);
            }
            if b == layout.source_block {
                sources.push(self.l2norm.forward(x.clone()));
            }
            let pool = if b < last {
                MaxPool2dConfig::new([2, 2])
                    .with_strides([2, 2])
                    .with_ceil_mode(b == layout.ceil_pool_block)
            } else {
                // pool5: 3x3, stride 1, padding 1.
                MaxPool2dConfig::new([3, 3])
                    .with_strides([1, 1])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            };
            x = pool.init().forward(x);
        }
        for (i, conv) in convs.by_ref().take(2) {
            x = self.conv_relu(i, conv, x);
        }
        sources.push(x.clone());
        for (i, conv) in convs {
            x = self.conv_relu(i, conv, x);
            if !(i - self.vgg.len()).is_multiple_of(2) {
                sources.push(x.clone());
            }
        }
        sources
    }

    /// `relu(norm(conv(x)))` for conv `i` of `vgg` followed by `extras` (no norm without batch
    /// norm).
    fn conv_relu(&self, i: usize, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
        let y = conv.forward(x);
        match self.norms.get(i) {
            Some(norm) => relu(norm.forward(y)),
            None => relu(y),
        }
    }

    /// Each head's output for `images`: `loc` and `conf` per source, `[N, A*4, H, W]` and
    /// `[N, A*C, H, W]`.
    fn heads(&self, images: Tensor<4>) -> (Vec<Tensor<4>>, Vec<Tensor<4>>) {
        run_heads(self.sources(images), &self.loc, &self.conf, Conv2d::forward)
    }
}
