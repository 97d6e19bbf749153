//! PyTorch weight import (amdegroot, torchvision, lufficc, ImageNet VGG16 backbones) and native
//! Burn checkpoints.
//!
//! A `.pth` is read with burn-store's PyTorch reader; its layout is detected from its keys
//! ([`PthLayout::detect`]); `map_key` turns each layout's PyTorch key into a parameter of [`Ssd`]
//! (one `match` arm per group of keys, each with a comment on the layout it reads). Every parameter must be found with the shape
//! the configuration expects and every tensor in the file must be used, or the load fails naming
//! each key with expected and found shapes. Backbone files ([`PthLayout::TorchvisionVgg16`],
//! [`PthLayout::AmdegrootReducedFc`]) fill only the VGG part ([`LoadMode::Backbone`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::store::pytorch_reader::{DType, PytorchReader};
use burn::store::{BurnpackStore, ModuleSnapshot, bridge};
use burn::tensor::TensorData;

use crate::{LoadProblem, ModelError, Ssd, StateDictError};

/// The key layouts of the `.pth` files this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PthLayout {
    /// This crate's own module names in PyTorch's conventions, as [`Ssd::pytorch_state`] gives
    /// them (`vgg.0.weight` .. with contiguous indices, `norms.N.weight`/`bias` for a batch
    /// norm's scale and shift, `l2norm.weight`, `extras.N`, `loc.N`, `conf.N`): the state dict of
    /// a PyTorch re-implementation that names its modules as we do (`tools/train_reference.py`).
    /// The VGG networks.
    Native,
    /// amdegroot/ssd.pytorch full SSD: `vgg.N`, `L2Norm.weight`, `extras.N`, `loc.N`, `conf.N`.
    Amdegroot,
    /// torchvision `ssd300_vgg16`: `backbone.features.N`, `backbone.extra.N...`,
    /// `backbone.scale_weight`, `head.regression_head...`, `head.classification_head...`.
    Torchvision,
    /// lufficc/SSD: `backbone.vgg.N`, `backbone.l2_norm.weight`, `backbone.extras.N`,
    /// `box_head.predictor.{reg,cls}_headers.N`.
    Lufficc,
    /// torchvision's ImageNet `vgg16`: `features.N`, `classifier.{0,3}` (fc6/fc7, decimated to
    /// conv6/conv7 as in the paper). Backbone only.
    TorchvisionVgg16,
    /// amdegroot's `vgg16_reducedfc.pth`: `0.weight` .. `33.bias` (conv6/conv7 already reduced).
    /// Backbone only.
    AmdegrootReducedFc,
    /// torchvision `ssdlite320_mobilenet_v3_large`: `backbone.features.{0,1}...` (MobileNetV3
    /// split at C4's expansion), `backbone.extra.N`, `head.{regression,classification}_head
    /// .module_list.N`.
    TorchvisionSsdLite,
    /// torchvision's ImageNet `mobilenet_v3_large`: `features.N`, `classifier.N` (unused).
    /// Backbone only.
    TorchvisionMobileNetV3,
    /// NVIDIA's SSD300 v1.1 (DeepLearningExamples): `feature_extractor.feature_extractor.N`
    /// (ResNet's conv1, bn1, layer1..3 at 0, 1, 4, 5, 6), `additional_blocks.N`, `loc.N`,
    /// `conf.N`; a training checkpoint's `model` entry and `module.` prefixes as their scripts
    /// write them. Heads are stored coordinate-major (`[N, 4, P]` outputs) and reordered on load.
    NvidiaResnet,
    /// torchvision's ImageNet `resnet50`: `conv1`, `bn1`, `layer1..4`, `fc` (`layer4` and `fc`
    /// unused). Backbone only.
    TorchvisionResnet,
}

impl PthLayout {
    /// Detects the layout from a file's keys.
    pub fn detect(keys: &[String]) -> Option<Self> {
        let has = |k: &str| keys.iter().any(|key| key == k);
        let prefix = |p: &str| keys.iter().any(|key| key.starts_with(p));
        let within = |p: &str| keys.iter().any(|key| nvidia_key(key).starts_with(p));
        if has("l2norm.weight") {
            Some(PthLayout::Native)
        } else if within("feature_extractor.feature_extractor.0.") && within("additional_blocks.") {
            Some(PthLayout::NvidiaResnet)
        } else if has("conv1.weight") && prefix("layer1.0.") && prefix("fc.") {
            Some(PthLayout::TorchvisionResnet)
        } else if prefix("backbone.features.1.0.")
            && prefix("head.classification_head.module_list.")
        {
            Some(PthLayout::TorchvisionSsdLite)
        } else if prefix("features.1.block.") && prefix("classifier.") {
            Some(PthLayout::TorchvisionMobileNetV3)
        } else if has("L2Norm.weight") || (prefix("vgg.") && prefix("loc.")) {
            Some(PthLayout::Amdegroot)
        } else if has("backbone.scale_weight") {
            Some(PthLayout::Torchvision)
        } else if has("backbone.l2_norm.weight") {
            Some(PthLayout::Lufficc)
        } else if has("classifier.0.weight") && prefix("features.") {
            Some(PthLayout::TorchvisionVgg16)
        } else if has("0.weight") && has("33.weight") {
            Some(PthLayout::AmdegrootReducedFc)
        } else {
            None
        }
    }

    /// Whether the file holds only a backbone (ImageNet weights).
    pub fn is_backbone(self) -> bool {
        matches!(
            self,
            PthLayout::TorchvisionVgg16
                | PthLayout::AmdegrootReducedFc
                | PthLayout::TorchvisionMobileNetV3
                | PthLayout::TorchvisionResnet
        )
    }
}

/// Whether a load must fill every parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Every parameter of the model from the file, every tensor of the file used.
    Full,
    /// Only the base network (VGG's conv1_1 .. conv7, MobileNetV3's features); L2Norm, extras
    /// and heads keep their initial values.
    Backbone,
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The detected layout.
    pub layout: PthLayout,
    /// Parameters set from the file (our names), sorted.
    pub loaded: Vec<String>,
    /// Each used file key with the parameter it sets, in key order.
    pub mapping: Vec<(String, String)>,
    /// File keys ignored on purpose (e.g. torchvision VGG's fc8 classifier).
    pub ignored: Vec<String>,
}

/// The module's parameter names with their shapes, as a state dict of the model it reproduces
/// names them (`vgg.0.weight`, ..., `conf.5.bias`; batch norms' running statistics included):
/// the names without the [`Ssd`] variant.
fn parameter_shapes(model: &Ssd) -> BTreeMap<String, Vec<usize>> {
    model
        .collect(None, None, true)
        .into_iter()
        .map(|t| (t.name, t.shape.to_vec()))
        .collect()
}

/// Indices of the convs of a VGG `nn.Sequential` as amdegroot (and torchvision) build it: each
/// conv is followed by a ReLU, each block but the last by a max-pool, then pool5, conv6, ReLU,
/// conv7. For VGG16: 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33.
fn sequential_conv_indices(blocks: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut index = 0;
    for (b, &n) in blocks.iter().enumerate() {
        for _ in 0..n {
            out.push(index);
            index += 2; // conv, ReLU
        }
        if b + 1 < blocks.len() {
            index += 1; // max-pool
        }
    }
    index += 1; // pool5
    out.push(index); // conv6
    out.push(index + 2); // conv7 after ReLU
    out
}

/// Splits `prefix.N.rest` into `(N, rest)`.
fn indexed<'a>(key: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let rest = key.strip_prefix(prefix)?;
    let (n, tail) = rest.split_once('.')?;
    Some((n.parse().ok()?, tail))
}

/// A key of NVIDIA's files without the `model.` entry of a training checkpoint and the `module.`
/// prefix of a `DistributedDataParallel` model.
fn nvidia_key(key: &str) -> &str {
    let key = key.strip_prefix("model.").unwrap_or(key);
    key.strip_prefix("module.").unwrap_or(key)
}

/// What to do with one key of a file.
enum Target {
    /// Set our parameter of this name.
    Param(String),
    /// A head stored coordinate-major (NVIDIA's `[N, 4, P]`: output channel `k * boxes + a`),
    /// to set our box-major parameter of this name (channel `a * K + k`).
    Heads { name: String, boxes: usize },
    /// fc6 / fc7 of an ImageNet VGG16, to decimate into conv6 / conv7.
    Decimate { fc: usize, rest: String },
    /// Ignore on purpose (fc8).
    Ignore,
    /// No rule matches.
    Unknown,
}

/// What the key maps need to know of the network: where amdegroot's VGG Sequential indices land
/// in ours, and which MobileNetV3 blocks have an expansion and a squeeze-excitation.
struct KeyContext {
    vgg_index: BTreeMap<usize, usize>,
    lite_blocks: Vec<(bool, bool)>,
    /// Boxes per location of each level.
    head_boxes: Vec<usize>,
    /// Our parameter names (for the native layout).
    names: BTreeSet<String>,
}

/// A key of the native layout as our parameter name: the same name, or a batch norm's PyTorch
/// `weight`/`bias` as our `gamma`/`beta`.
fn native_key(key: &str, names: &BTreeSet<String>) -> Target {
    if names.contains(key) {
        return Target::Param(key.to_owned());
    }
    let ours = match key.rsplit_once('.') {
        Some((module, "weight")) => format!("{module}.gamma"),
        Some((module, "bias")) => format!("{module}.beta"),
        _ => return Target::Unknown,
    };
    if names.contains(&ours) {
        Target::Param(ours)
    } else {
        Target::Unknown
    }
}

/// A torchvision `Conv2dNormActivation`'s tensor (`0.weight`: the conv; `1.*`: the batch norm,
/// PyTorch's `weight`/`bias` being Burn's `gamma`/`beta`) as our [`crate::ConvBn`]'s.
fn conv_bn(rest: &str) -> Option<String> {
    Some(match rest {
        "0.weight" => "conv.weight".to_owned(),
        "1.weight" => "bn.gamma".to_owned(),
        "1.bias" => "bn.beta".to_owned(),
        "1.running_mean" | "1.running_var" => format!("bn.{}", &rest[2..]),
        _ => return None,
    })
}

/// Layer `j` of torchvision's `InvertedResidual.block` for block `b`: expansion (where there is
/// one), depthwise, squeeze-excitation (where there is one), projection; with our name.
fn lite_block_tensor(blocks: &[(bool, bool)], b: usize, j: usize, rest: &str) -> Target {
    let Some(&(expand, se)) = blocks.get(b) else {
        return Target::Unknown;
    };
    let mut layers = Vec::with_capacity(4);
    if expand {
        layers.push("expand");
    }
    layers.push("depthwise");
    if se {
        layers.push("se");
    }
    layers.push("project");
    let name = match layers.get(j) {
        Some(&"se") if matches!(rest, "fc1.weight" | "fc1.bias" | "fc2.weight" | "fc2.bias") => {
            Some(format!("se.{rest}"))
        }
        Some(&"se") | None => None,
        Some(layer) => conv_bn(rest).map(|r| format!("{layer}.{r}")),
    };
    name.map_or(Target::Unknown, |n| {
        Target::Param(format!("backbone.blocks.{b}.{n}"))
    })
}

/// The key map of each layout: one rule per kind of key.
fn map_key(layout: PthLayout, key: &str, ctx: &KeyContext) -> Target {
    let vgg_index = &ctx.vgg_index;
    let vgg = |k: usize, rest: &str| match vgg_index.get(&k) {
        Some(i) => Target::Param(format!("vgg.{i}.{rest}")),
        None => Target::Unknown,
    };
    let same = |prefix: &str, ours: &str| {
        indexed(key, prefix).map(|(i, rest)| Target::Param(format!("{ours}.{i}.{rest}")))
    };
    match layout {
        PthLayout::Native => native_key(key, &ctx.names),
        PthLayout::Amdegroot => {
            // `vgg.K` is the K-th module of amdegroot's VGG Sequential (convs at sparse indices).
            if let Some((k, rest)) = indexed(key, "vgg.") {
                return vgg(k, rest);
            }
            // The L2Norm scale on conv4_3.
            if key == "L2Norm.weight" {
                return Target::Param("l2norm.weight".to_owned());
            }
            // Extras, loc and conf heads: same names, contiguous indices.
            same("extras.", "extras")
                .or_else(|| same("loc.", "loc"))
                .or_else(|| same("conf.", "conf"))
                .unwrap_or(Target::Unknown)
        }
        PthLayout::Torchvision => {
            // conv1_1 .. conv4_3 keep amdegroot's Sequential indices under backbone.features.
            if let Some((k, rest)) = indexed(key, "backbone.features.") {
                return vgg(k, rest);
            }
            if key == "backbone.scale_weight" {
                return Target::Param("l2norm.weight".to_owned());
            }
            // backbone.extra.0 = [pool4, conv5_1, ReLU, conv5_2, ReLU, conv5_3, ReLU, pool5,
            // Sequential(conv6 at .1, conv7 at .3)]: amdegroot index = 23 + K for conv5_x.
            if let Some((k, rest)) = indexed(key, "backbone.extra.0.") {
                if k == 7
                    && let Some((j, rest)) = indexed(rest, "")
                {
                    // .7.1 = conv6 (amdegroot 31), .7.3 = conv7 (amdegroot 33).
                    return vgg(30 + j, rest);
                }
                return vgg(23 + k, rest);
            }
            // backbone.extra.{1..}: Sequential(reduce conv at .0, ReLU, source conv at .2, ReLU).
            if let Some((i, rest)) = indexed(key, "backbone.extra.")
                && let Some((j, rest)) = indexed(rest, "")
            {
                return Target::Param(format!("extras.{}.{rest}", 2 * (i - 1) + j / 2));
            }
            same("head.regression_head.module_list.", "loc")
                .or_else(|| same("head.classification_head.module_list.", "conf"))
                .unwrap_or(Target::Unknown)
        }
        PthLayout::Lufficc => {
            if let Some((k, rest)) = indexed(key, "backbone.vgg.") {
                return vgg(k, rest);
            }
            if key == "backbone.l2_norm.weight" {
                return Target::Param("l2norm.weight".to_owned());
            }
            same("backbone.extras.", "extras")
                .or_else(|| same("box_head.predictor.reg_headers.", "loc"))
                .or_else(|| same("box_head.predictor.cls_headers.", "conf"))
                .unwrap_or(Target::Unknown)
        }
        PthLayout::TorchvisionVgg16 => {
            // features.K: the 13 convs at amdegroot's indices (pool5 at 30 is dropped).
            if let Some((k, rest)) = indexed(key, "features.") {
                return vgg(k, rest);
            }
            // classifier.0 = fc6, classifier.3 = fc7: decimated; classifier.6 = fc8: unused.
            match indexed(key, "classifier.") {
                Some((0, rest)) => Target::Decimate {
                    fc: 6,
                    rest: rest.to_owned(),
                },
                Some((3, rest)) => Target::Decimate {
                    fc: 7,
                    rest: rest.to_owned(),
                },
                Some((6, _)) => Target::Ignore,
                _ => Target::Unknown,
            }
        }
        PthLayout::AmdegrootReducedFc => {
            // `K.weight`: amdegroot's VGG Sequential without the `vgg.` prefix.
            match key.split_once('.') {
                Some((k, rest)) => k.parse().map_or(Target::Unknown, |k| vgg(k, rest)),
                None => Target::Unknown,
            }
        }
        PthLayout::TorchvisionSsdLite => lite_key(key, ctx),
        PthLayout::NvidiaResnet => nvidia_resnet_key(key, ctx),
        PthLayout::TorchvisionResnet => {
            if let Some(r) = key.strip_prefix("conv1.") {
                return Target::Param(format!("stem.conv.{r}"));
            }
            if let Some(r) = key.strip_prefix("bn1.") {
                return conv_bn(&format!("1.{r}"))
                    .map_or(Target::Unknown, |n| Target::Param(format!("stem.{n}")));
            }
            for (l, layer) in ["layer1.", "layer2.", "layer3."].into_iter().enumerate() {
                if let Some((b, rest)) = indexed(key, layer) {
                    return resnet_block_tensor(l, b, rest);
                }
            }
            if key.starts_with("layer4.") || key.starts_with("fc.") {
                Target::Ignore
            } else {
                Target::Unknown
            }
        }
        PthLayout::TorchvisionMobileNetV3 => {
            let last = ctx.lite_blocks.len() + 1;
            let param = |name: Option<String>| name.map_or(Target::Unknown, Target::Param);
            match indexed(key, "features.") {
                // features.0 = stem, features.1..=15 = the blocks, features.16 = the last conv.
                Some((0, rest)) => param(conv_bn(rest).map(|r| format!("backbone.stem.{r}"))),
                Some((k, rest)) if k == last => {
                    param(conv_bn(rest).map(|r| format!("backbone.last.{r}")))
                }
                Some((k, rest)) => match indexed(rest, "block.") {
                    Some((j, rest)) => lite_block_tensor(&ctx.lite_blocks, k - 1, j, rest),
                    None => Target::Unknown,
                },
                // The ImageNet classifier.
                None if key.starts_with("classifier.") => Target::Ignore,
                None => Target::Unknown,
            }
        }
    }
}

/// A tensor of torchvision's ResNet bottleneck `b` of layer `l` (`conv1..3`, `bn1..3`,
/// `downsample.{0,1}`) as ours (each conv with its batch norm).
fn resnet_block_tensor(l: usize, b: usize, rest: &str) -> Target {
    let name = if let Some(r) = rest.strip_prefix("downsample.") {
        conv_bn(r).map(|n| format!("downsample.{n}"))
    } else {
        rest.split_once('.').and_then(|(layer, r)| match layer {
            "conv1" | "conv2" | "conv3" if r == "weight" => Some(format!("{layer}.conv.weight")),
            "bn1" | "bn2" | "bn3" => {
                conv_bn(&format!("1.{r}")).map(|n| format!("conv{}.{n}", &layer[2..]))
            }
            _ => None,
        })
    };
    name.map_or(Target::Unknown, |n| {
        Target::Param(format!("layers.{l}.{b}.{n}"))
    })
}

/// NVIDIA's SSD300 v1.1 keys: the ResNet as one Sequential (conv1, bn1, ReLU, max-pool,
/// layer1..3), the extra blocks as Sequentials (conv, BN, ReLU, conv, BN, ReLU), the heads.
fn nvidia_resnet_key(key: &str, ctx: &KeyContext) -> Target {
    let k = nvidia_key(key);
    if let Some((i, rest)) = indexed(k, "feature_extractor.feature_extractor.") {
        return match i {
            0 => Target::Param(format!("stem.conv.{rest}")),
            1 => conv_bn(&format!("1.{rest}"))
                .map_or(Target::Unknown, |n| Target::Param(format!("stem.{n}"))),
            4..=6 => match indexed(rest, "") {
                Some((b, rest)) => resnet_block_tensor(i - 4, b, rest),
                None => Target::Unknown,
            },
            _ => Target::Unknown,
        };
    }
    if let Some((i, rest)) = indexed(k, "additional_blocks.")
        && let Some((j, rest)) = indexed(rest, "")
    {
        // .0 conv and .1 batch norm of the reduce; .3 and .4 of the source conv.
        let (conv, j) = match j {
            0 | 1 => (2 * i, j),
            3 | 4 => (2 * i + 1, j - 3),
            _ => return Target::Unknown,
        };
        return conv_bn(&format!("{j}.{rest}")).map_or(Target::Unknown, |n| {
            Target::Param(format!("extras.{conv}.{n}"))
        });
    }
    for head in ["loc", "conf"] {
        if let Some((i, rest)) = indexed(k, &format!("{head}.")) {
            return match ctx.head_boxes.get(i) {
                Some(&boxes) if matches!(rest, "weight" | "bias") => Target::Heads {
                    name: format!("{head}.{i}.{rest}"),
                    boxes,
                },
                _ => Target::Unknown,
            };
        }
    }
    // A training checkpoint's optimizer state.
    if key.starts_with("optimizer.") {
        Target::Ignore
    } else {
        Target::Unknown
    }
}

/// Reorders a head stored coordinate-major (output channel `k * boxes + a`) box-major (channel
/// `a * K + k`); `shape[0]` is `boxes * K`.
fn box_major(values: &[f32], shape: &[usize], boxes: usize) -> Vec<f32> {
    let outputs = shape.first().copied().unwrap_or(0);
    let inner: usize = shape.iter().skip(1).product();
    let per_box = outputs / boxes;
    let mut out = Vec::with_capacity(values.len());
    for a in 0..boxes {
        for k in 0..per_box {
            let theirs = k * boxes + a;
            out.extend_from_slice(&values[theirs * inner..(theirs + 1) * inner]);
        }
    }
    out
}

/// torchvision's `ssdlite320_mobilenet_v3_large` keys: MobileNetV3's features split in two at
/// C4's expansion (`features.0` = stem, blocks before C4, C4's expansion; `features.1` = the rest
/// of C4's block, the blocks after it, the last conv), four extra blocks, two heads of
/// depthwise-separable prediction blocks.
fn lite_key(key: &str, ctx: &KeyContext) -> Target {
    let c4 = crate::lite::C4_BLOCK;
    let blocks = &ctx.lite_blocks;
    let param = |name: Option<String>| name.map_or(Target::Unknown, Target::Param);
    if let Some((k, rest)) = indexed(key, "backbone.features.0.") {
        return match k {
            0 => param(conv_bn(rest).map(|r| format!("backbone.stem.{r}"))),
            k if k == c4 + 1 => {
                param(conv_bn(rest).map(|r| format!("backbone.blocks.{c4}.expand.{r}")))
            }
            k => match indexed(rest, "block.") {
                Some((j, rest)) => lite_block_tensor(blocks, k - 1, j, rest),
                None => Target::Unknown,
            },
        };
    }
    if let Some((k, rest)) = indexed(key, "backbone.features.1.") {
        let last = blocks.len() - c4;
        return match k {
            // C4's block after its expansion: a slice of the block's Sequential, which keeps its
            // indices (1 = depthwise, 2 = squeeze-excitation, 3 = projection).
            0 => match indexed(rest, "") {
                Some((j, rest)) if j > 0 => lite_block_tensor(blocks, c4, j, rest),
                _ => Target::Unknown,
            },
            k if k == last => param(conv_bn(rest).map(|r| format!("backbone.last.{r}"))),
            k => match indexed(rest, "block.") {
                Some((j, rest)) => lite_block_tensor(blocks, c4 + k, j, rest),
                None => Target::Unknown,
            },
        };
    }
    if let Some((i, rest)) = indexed(key, "backbone.extra.")
        && let Some((j, rest)) = indexed(rest, "")
    {
        let layer = ["reduce", "depthwise", "expand"].get(j);
        return param(layer.and_then(|l| conv_bn(rest).map(|r| format!("extras.{i}.{l}.{r}"))));
    }
    for (prefix, ours) in [
        ("head.regression_head.module_list.", "loc"),
        ("head.classification_head.module_list.", "conf"),
    ] {
        if let Some((k, rest)) = indexed(key, prefix) {
            return match indexed(rest, "") {
                Some((0, rest)) => {
                    param(conv_bn(rest).map(|r| format!("{ours}.{k}.depthwise.{r}")))
                }
                Some((1, "weight" | "bias")) => {
                    Target::Param(format!("{ours}.{k}.output.{}", &rest[2..]))
                }
                _ => Target::Unknown,
            };
        }
    }
    Target::Unknown
}

fn read_f32(
    reader: &PytorchReader,
    key: &str,
    path: &Path,
) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
    let tensor = reader.get(key).ok_or_else(|| ModelError::Weights {
        path: path.to_owned(),
        message: format!("tensor {key} disappeared while reading"),
    })?;
    let bytes = tensor.read().map_err(|e| ModelError::Weights {
        path: path.to_owned(),
        message: format!("{key}: {e}"),
    })?;
    let values: Vec<f32> = match tensor.dtype() {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|b| half_to_f32(u16::from_ne_bytes([b[0], b[1]])))
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(u16::from_ne_bytes([b[0], b[1]])) << 16))
            .collect(),
        other => {
            return Err(ModelError::Weights {
                path: path.to_owned(),
                message: format!("{key}: unsupported dtype {other:?} (expected a float type)"),
            });
        }
    };
    Ok((values, tensor.shape().to_vec()))
}

/// IEEE half to f32.
fn half_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// One tensor of a file to load.
struct PlannedTensor {
    /// The file's key.
    key: String,
    /// Our parameter.
    name: String,
    /// `weight` / `bias` for decimated tensors.
    rest: String,
    /// fc layer (6 or 7) to decimate, if any.
    decimate: Option<usize>,
    /// Boxes per location of a head stored coordinate-major, to reorder box-major.
    box_major: Option<usize>,
}

/// The shape [`decimate`] produces, without touching values.
fn decimated_shape(fc: usize, rest: &str, shape: &[usize]) -> Option<Vec<usize>> {
    match (fc, rest, shape) {
        (6, "weight", [4096, 25088]) => Some(vec![1024, 512, 3, 3]),
        (7, "weight", [4096, 4096]) => Some(vec![1024, 1024, 1, 1]),
        (6 | 7, "bias", [4096]) => Some(vec![1024]),
        _ => None,
    }
}

/// The paper's decimation of a fully connected VGG16 layer into a (dilated) conv.
/// fc6 `[4096, 25088]` is viewed as `[4096, 512, 7, 7]`; every 4th output channel and every 3rd
/// spatial position are kept: `[1024, 512, 3, 3]`. fc7 `[4096, 4096]`: every 4th row and column,
/// `[1024, 1024, 1, 1]`. Biases: every 4th.
fn decimate(
    fc: usize,
    rest: &str,
    values: &[f32],
    shape: &[usize],
) -> Option<(Vec<f32>, Vec<usize>)> {
    match (fc, rest, shape) {
        (6, "weight", [4096, 25088]) => {
            let mut out = Vec::with_capacity(1024 * 512 * 9);
            for o in (0..4096).step_by(4) {
                for c in 0..512 {
                    for y in (0..7).step_by(3) {
                        for x in (0..7).step_by(3) {
                            out.push(values[o * 25088 + c * 49 + y * 7 + x]);
                        }
                    }
                }
            }
            Some((out, vec![1024, 512, 3, 3]))
        }
        (7, "weight", [4096, 4096]) => {
            let mut out = Vec::with_capacity(1024 * 1024);
            for o in (0..4096).step_by(4) {
                for i in (0..4096).step_by(4) {
                    out.push(values[o * 4096 + i]);
                }
            }
            Some((out, vec![1024, 1024, 1, 1]))
        }
        (6 | 7, "bias", [4096]) => Some((values.iter().step_by(4).copied().collect(), vec![1024])),
        _ => None,
    }
}

impl Ssd {
    /// Every float parameter and running statistic with its values, by the name a state dict of
    /// the model it reproduces would give it (as [`LoadReport::loaded`] names them).
    pub fn named_values(&self) -> BTreeMap<String, Vec<f32>> {
        // Through `valid`: running statistics with every thread's last update merged.
        burn::module::Module::valid(self)
            .collect(None, None, true)
            .into_iter()
            .filter(|t| t.dtype.is_float())
            .filter_map(|t| {
                let (name, dtype, shape, _, bytes) = t.into_parts().ok()?;
                let values = TensorData::from_bytes(bytes, shape, dtype)
                    .iter::<f32>()
                    .collect();
                Some((name, values))
            })
            .collect()
    }

    /// Loads a PyTorch `.pth` (a state dict) into this model, detecting its layout from the keys.
    /// Full layouts need [`LoadMode::Full`] (every parameter, every tensor); backbone layouts need
    /// [`LoadMode::Backbone`].
    pub fn load_pytorch(
        self,
        path: &Path,
        mode: LoadMode,
    ) -> Result<(Self, LoadReport), ModelError> {
        let reader = PytorchReader::new(path).map_err(|e| ModelError::Weights {
            path: path.to_owned(),
            message: format!("not a readable PyTorch file: {e}"),
        })?;
        let entries: Vec<(String, Vec<usize>)> = reader
            .keys()
            .into_iter()
            .filter_map(|k| reader.get(&k).map(|t| (k.clone(), t.shape().to_vec())))
            .collect();
        let (plan, report) =
            self.plan_load(&entries, mode)
                .map_err(|source| ModelError::StateDict {
                    path: path.to_owned(),
                    source,
                })?;
        let mut values = BTreeMap::new();
        for step in plan {
            let (data, shape) = read_f32(&reader, &step.key, path)?;
            let data = match (step.decimate, step.box_major) {
                (None, Some(boxes)) => box_major(&data, &shape, boxes),
                (None, None) => data,
                (Some(fc), _) => match decimate(fc, &step.rest, &data, &shape) {
                    Some((d, _)) => d,
                    None => {
                        return Err(ModelError::Weights {
                            path: path.to_owned(),
                            message: format!("{}: cannot decimate {shape:?}", step.key),
                        });
                    }
                },
            };
            values.insert(step.name, data);
        }
        Ok((self.with_values(values), report))
    }

    /// Checks a state dict's keys and shapes against this model without reading any values:
    /// what [`Ssd::load_pytorch`] would load, or every problem (unused keys, missing parameters,
    /// wrong shapes, each named with expected and found shapes).
    pub fn check_state_dict(
        &self,
        entries: &[(String, Vec<usize>)],
        mode: LoadMode,
    ) -> Result<LoadReport, StateDictError> {
        self.plan_load(entries, mode).map(|(_, report)| report)
    }

    fn plan_load(
        &self,
        entries: &[(String, Vec<usize>)],
        mode: LoadMode,
    ) -> Result<(Vec<PlannedTensor>, LoadReport), StateDictError> {
        let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        let layout = PthLayout::detect(&keys).ok_or_else(|| unknown_layout(&keys))?;
        if layout.is_backbone() && mode == LoadMode::Full {
            return Err(StateDictError::BackboneOnly(layout));
        }
        let expected = parameter_shapes(self);
        let conv_indices = sequential_conv_indices(&self.layout_blocks());
        let ctx = KeyContext {
            vgg_index: conv_indices
                .iter()
                .enumerate()
                .map(|(ours, &theirs)| (theirs, ours))
                .collect(),
            lite_blocks: self.lite_blocks(),
            head_boxes: self.head_boxes(),
            names: expected.keys().cloned().collect(),
        };
        let vgg_index = &ctx.vgg_index;

        let mut problems = Vec::new();
        let mut plan: Vec<PlannedTensor> = Vec::new();
        let mut ignored = Vec::new();
        let mut sorted: Vec<&(String, Vec<usize>)> = entries.iter().collect();
        sorted.sort();
        for (key, shape) in sorted {
            if key.ends_with("num_batches_tracked") {
                ignored.push(key.clone());
                continue;
            }
            let mut boxes = None;
            let (name, rest, decimate_fc, shape) = match map_key(layout, key, &ctx) {
                Target::Ignore => {
                    ignored.push(key.clone());
                    continue;
                }
                Target::Unknown => {
                    problems.push(LoadProblem::Unused { key: key.clone() });
                    continue;
                }
                Target::Param(name) => (name, String::new(), None, shape.clone()),
                Target::Heads { name, boxes: b } => {
                    boxes = Some(b);
                    (name, String::new(), None, shape.clone())
                }
                Target::Decimate { fc, rest } => {
                    let name = format!(
                        "vgg.{}.{rest}",
                        vgg_index.len() - if fc == 6 { 2 } else { 1 }
                    );
                    match decimated_shape(fc, &rest, shape) {
                        Some(s) => (name, rest, Some(fc), s),
                        None => {
                            problems.push(LoadProblem::Decimate {
                                key: key.clone(),
                                shape: shape.clone(),
                                fc,
                            });
                            continue;
                        }
                    }
                }
            };
            match expected.get(&name) {
                None => problems.push(LoadProblem::NoSuchParameter {
                    key: key.clone(),
                    name,
                }),
                Some(want) if *want != shape => problems.push(LoadProblem::Shape {
                    key: key.clone(),
                    name,
                    expected: want.clone(),
                    found: shape,
                }),
                Some(_) => plan.push(PlannedTensor {
                    key: key.clone(),
                    name,
                    rest,
                    decimate: decimate_fc,
                    box_major: boxes,
                }),
            }
        }
        let planned: BTreeSet<&String> = plan.iter().map(|p| &p.name).collect();
        let base = self.base_prefixes();
        for (name, shape) in &expected {
            let required = mode == LoadMode::Full || base.iter().any(|p| name.starts_with(p));
            if required && !planned.contains(name) {
                problems.push(LoadProblem::Missing {
                    name: name.clone(),
                    expected: shape.clone(),
                });
            }
        }
        if !problems.is_empty() {
            return Err(StateDictError::Mismatch { layout, problems });
        }
        let mut loaded: Vec<String> = plan.iter().map(|p| p.name.clone()).collect();
        loaded.sort();
        let mapping = plan
            .iter()
            .map(|p| (p.key.clone(), p.name.clone()))
            .collect();
        Ok((
            plan,
            LoadReport {
                layout,
                loaded,
                mapping,
                ignored,
            },
        ))
    }

    /// Which blocks of a MobileNetV3 base have an expansion and a squeeze-excitation.
    fn lite_blocks(&self) -> Vec<(bool, bool)> {
        match self {
            Ssd::Lite(n) => n
                .backbone
                .blocks
                .iter()
                .map(|b| (b.expand.is_some(), b.se.is_some()))
                .collect(),
            Ssd::Vgg(_) | Ssd::Resnet(_) => Vec::new(),
        }
    }

    /// Boxes per location of each level, from the box regression heads.
    fn head_boxes(&self) -> Vec<usize> {
        match self {
            Ssd::Resnet(n) => n.loc.iter().map(|l| l.weight.dims()[0] / 4).collect(),
            Ssd::Vgg(_) | Ssd::Lite(_) => Vec::new(),
        }
    }

    /// The prefixes of the base network's parameters (what a backbone file fills).
    fn base_prefixes(&self) -> &'static [&'static str] {
        match self {
            Ssd::Vgg(_) => &["vgg."],
            Ssd::Lite(_) => &["backbone."],
            Ssd::Resnet(_) => &["stem.", "layers."],
        }
    }

    fn layout_blocks(&self) -> Vec<usize> {
        self.vgg()
            .map_or_else(Vec::new, |v| v.layout.blocks.clone())
    }

    /// Replaces the named parameters (names as [`parameter_shapes`] gives them; shapes already
    /// checked against the model's), each in the float type the model holds it in.
    fn with_values(mut self, values: BTreeMap<String, Vec<f32>>) -> Self {
        let held: BTreeMap<String, (Vec<usize>, burn_pack::DType)> = self
            .collect(None, None, true)
            .into_iter()
            .map(|t| (t.name, (t.shape.to_vec(), t.dtype)))
            .collect();
        let tensors = values
            .into_iter()
            .filter_map(|(name, data)| {
                let (shape, dtype) = held.get(&name)?.clone();
                let data = TensorData::new(data, shape).convert_dtype(dtype);
                Some(bridge::from_data(data, name, None))
            })
            .collect();
        let _ = self.apply(tensors, None, None, true);
        self
    }

    /// Saves the weights as a native Burn checkpoint (`.bpk`), replacing an existing file.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), ModelError> {
        self.save_checkpoint_with(path, &BTreeMap::new())
    }

    /// Saves the weights with `metadata` (key/value strings stored in the file, read back with
    /// [`checkpoint_metadata`]). The file is written whole under a temporary name beside `path`,
    /// flushed to disk and then renamed over `path`, so a process killed at any moment leaves
    /// either the previous file or the new one, never a partial one.
    pub fn save_checkpoint_with(
        &self,
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), ModelError> {
        let error = |message: String| ModelError::Weights {
            path: path.to_owned(),
            message,
        };
        let mut partial = path.as_os_str().to_owned();
        partial.push(format!(".partial-{}", std::process::id()));
        let partial = std::path::PathBuf::from(partial);
        let mut store = BurnpackStore::from_file(&partial)
            .auto_extension(false)
            .overwrite(true);
        for (key, value) in metadata {
            store = store.metadata(key.clone(), value.clone());
        }
        self.save_into(&mut store)
            .map_err(|e| error(format!("cannot save: {e}")))?;
        let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
        sync(&partial).map_err(|e| error(format!("cannot flush {}: {e}", partial.display())))?;
        std::fs::rename(&partial, path).map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            error(format!(
                "cannot rename {} into place: {e}",
                partial.display()
            ))
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Makes the rename itself durable; not every filesystem allows it, so best effort.
            let _ = sync(dir);
        }
        Ok(())
    }

    /// Loads a native checkpoint written by [`Ssd::save_checkpoint`] for the same configuration;
    /// every parameter must be present with its shape.
    pub fn load_checkpoint(mut self, path: &Path) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::Weights {
                path: path.to_owned(),
                message: "checkpoint not found".to_owned(),
            });
        }
        // Checkpoints of the VGG network written before the seam name its tensors without the
        // variant (`vgg.0.weight`): read them as the variant's.
        let mut store = BurnpackStore::from_file(path)
            .with_remap_pattern(r"^(vgg|norms|l2norm|extras|loc|conf)\.", "Vgg.$1.");
        let result = self
            .load_from(&mut store)
            .map_err(|e| ModelError::Weights {
                path: path.to_owned(),
                message: format!("cannot load: {e}"),
            })?;
        if !result.missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
            return Err(ModelError::Weights {
                path: path.to_owned(),
                message: format!(
                    "checkpoint does not fit this model: missing {:?}, unused {:?}, errors {:?}",
                    result.missing.iter().map(|m| &m.0).collect::<Vec<_>>(),
                    result.unused,
                    result.errors
                ),
            });
        }
        Ok(self)
    }
}

/// The most classes (background included) a detector may declare: far above any detection data
/// set (COCO 91, Objects365 365, Open Images 601), far below an allocation that could fail.
pub const MAX_CLASSES: usize = 10_000;

/// The error for keys of no known layout, quoting a few of them.
fn unknown_layout(keys: &[String]) -> StateDictError {
    let mut first_keys: Vec<String> = keys.iter().take(6).cloned().collect();
    first_keys.sort();
    StateDictError::UnknownLayout { first_keys }
}

/// The keys of a `.pth` with their shapes, without reading any values.
pub fn pth_entries(path: &Path) -> Result<Vec<(String, Vec<usize>)>, ModelError> {
    let reader = PytorchReader::new(path).map_err(|e| ModelError::Weights {
        path: path.to_owned(),
        message: format!("not a readable PyTorch file: {e}"),
    })?;
    Ok(reader
        .keys()
        .into_iter()
        .filter_map(|k| reader.get(&k).map(|t| (k.clone(), t.shape().to_vec())))
        .collect())
}

impl crate::SsdConfig {
    /// The configuration a full-model state dict was trained with, from its keys and shapes:
    /// SSD300 or SSD512 from the number of heads (6 or 7), the classes from the first
    /// classification head, torchvision's default boxes for its layout
    /// ([`ssd_core::PriorConfig::ssd300_torchvision`]); SSDLite320 with the width, tail and
    /// extra blocks its shapes show; NVIDIA's SSD300 with the stem width, blocks per layer and
    /// extra widths its shapes show. Backbone-only files are an error.
    pub fn from_state_dict(entries: &[(String, Vec<usize>)]) -> Result<Self, StateDictError> {
        let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        let layout = PthLayout::detect(&keys).ok_or_else(|| unknown_layout(&keys))?;
        let (loc, conf) = match layout {
            PthLayout::Native => return Err(StateDictError::ConfigNeeded),
            PthLayout::Amdegroot => ("loc.", "conf."),
            PthLayout::Torchvision => (
                "head.regression_head.module_list.",
                "head.classification_head.module_list.",
            ),
            PthLayout::Lufficc => (
                "box_head.predictor.reg_headers.",
                "box_head.predictor.cls_headers.",
            ),
            PthLayout::TorchvisionSsdLite => return lite_config(entries),
            PthLayout::NvidiaResnet => return nvidia_config(entries),
            PthLayout::TorchvisionVgg16
            | PthLayout::AmdegrootReducedFc
            | PthLayout::TorchvisionMobileNetV3
            | PthLayout::TorchvisionResnet => {
                return Err(StateDictError::BackboneOnly(layout));
            }
        };
        let heads = keys
            .iter()
            .filter(|k| k.starts_with(loc) && k.ends_with(".weight"))
            .count();
        let conf0 = entries
            .iter()
            .find(|(k, _)| *k == format!("{conf}0.weight"))
            .map(|(_, shape)| shape.clone())
            .ok_or_else(|| StateDictError::MissingKey(format!("{conf}0.weight")))?;
        let mut config = match heads {
            6 => Self::ssd300(2),
            7 => Self::ssd512(2),
            n => return Err(StateDictError::HeadCount(n)),
        };
        if layout == PthLayout::Torchvision {
            config.priors = ssd_core::PriorConfig::ssd300_torchvision();
        }
        let boxes = config.priors.boxes_per_location()[0];
        let outputs = conf0.first().copied().unwrap_or(0);
        config.num_classes = checked_classes(&format!("{conf}0.weight"), outputs, boxes)?;
        config.validate()?;
        Ok(config)
    }
}

/// The classes of a classification head with `outputs` channels for `boxes` boxes per location.
fn checked_classes(key: &str, outputs: usize, boxes: usize) -> Result<usize, StateDictError> {
    if outputs == 0 || !outputs.is_multiple_of(boxes) {
        return Err(StateDictError::ClassOutputs {
            key: key.to_owned(),
            outputs,
            boxes,
        });
    }
    if outputs / boxes > MAX_CLASSES {
        return Err(StateDictError::TooLarge {
            key: key.to_owned(),
            what: "classes",
            value: outputs / boxes,
            limit: MAX_CLASSES,
        });
    }
    Ok(outputs / boxes)
}

/// The widths a MobileNetV3 of torchvision may have been built with (`width_mult`).
const LITE_WIDTHS: [f64; 8] = [0.25, 0.35, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0];

/// The tail (reduced or not) and width of a MobileNetV3-Large whose C4 expansion has `expansion`
/// channels and whose last conv has `last`.
fn lite_shape(expansion: usize, last: usize) -> Option<(bool, f64)> {
    LITE_WIDTHS
        .iter()
        .flat_map(|&w| [(true, w), (false, w)])
        .find(|&(reduced, w)| {
            crate::lite::c4_expansion(w) == expansion
                && 6 * crate::lite::c4_channels(reduced, w) == last
        })
}

impl crate::SsdConfig {
    /// Fits this configuration's base network to an ImageNet backbone file's shapes, for a run
    /// that starts from it: a MobileNetV3 takes the file's tail and width (torchvision's ImageNet
    /// `mobilenet_v3_large` has the full tail, which SSDLite trained from it keeps; the preset's
    /// reduced tail is torchvision's choice without one); a ResNet takes the file's stem width
    /// and blocks per layer (`resnet101`'s 23 in `layer3` make a ResNet-101 SSD). VGG and other
    /// files leave it as it is; whether the file then fits is the load's to say.
    pub fn fit_backbone(&mut self, entries: &[(String, Vec<usize>)]) -> Result<(), StateDictError> {
        let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        let out_channels = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, shape)| shape.first().copied())
                .ok_or_else(|| StateDictError::MissingKey(key.to_owned()))
        };
        let base = match (&mut self.base, PthLayout::detect(&keys)) {
            (crate::BaseConfig::MobilenetV3(base), Some(PthLayout::TorchvisionMobileNetV3)) => base,
            (crate::BaseConfig::Resnet(base), Some(PthLayout::TorchvisionResnet)) => {
                base.width = out_channels("conv1.weight")?;
                base.blocks = (1..=3)
                    .map(|l| {
                        (0..)
                            .take_while(|b| keys.contains(&format!("layer{l}.{b}.conv1.weight")))
                            .count()
                    })
                    .collect();
                return Ok(());
            }
            _ => return Ok(()),
        };
        let c4 = crate::lite::C4_BLOCK;
        let expansion_key = format!("features.{}.block.0.0.weight", c4 + 1);
        let last_key = format!("features.{}.0.weight", crate::lite::BLOCKS + 1);
        let (expansion, last) = (out_channels(&expansion_key)?, out_channels(&last_key)?);
        let (reduced_tail, width_mult) =
            lite_shape(expansion, last).ok_or(StateDictError::UnknownWidth {
                expansion_key,
                expansion,
                last_key,
                last,
            })?;
        base.reduced_tail = reduced_tail;
        base.width_mult = width_mult;
        Ok(())
    }
}

/// An SSDLite state dict's configuration: [`crate::SsdConfig::ssdlite320`] with the width and
/// tail that give its C4 expansion and last conv, its extra blocks' widths and its classes.
fn lite_config(entries: &[(String, Vec<usize>)]) -> Result<crate::SsdConfig, StateDictError> {
    let out_channels = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, shape)| shape.first().copied())
            .ok_or_else(|| StateDictError::MissingKey(key.to_owned()))
    };
    let c4 = crate::lite::C4_BLOCK;
    let expansion_key = format!("backbone.features.0.{}.0.weight", c4 + 1);
    let expansion = out_channels(&expansion_key)?;
    // The last conv is the highest-numbered module of features.1 (6 times C4's width).
    let last = (1..)
        .take_while(|k| {
            let prefix = format!("backbone.features.1.{k}.");
            entries.iter().any(|(key, _)| key.starts_with(&prefix))
        })
        .last()
        .ok_or_else(|| StateDictError::MissingKey("backbone.features.1.1.*".to_owned()))?;
    let last_key = format!("backbone.features.1.{last}.0.weight");
    let c5 = out_channels(&last_key)?;
    let Some((reduced_tail, width_mult)) = lite_shape(expansion, c5) else {
        return Err(StateDictError::UnknownWidth {
            expansion_key,
            expansion,
            last_key,
            last: c5,
        });
    };
    let extras = (0..)
        .map_while(|i| out_channels(&format!("backbone.extra.{i}.2.0.weight")).ok())
        .collect();
    let mut config = crate::SsdConfig::ssdlite320(2);
    config.base = crate::BaseConfig::MobilenetV3(crate::MobileNetV3Base {
        reduced_tail,
        width_mult,
        extras,
    });
    let conf0 = "head.classification_head.module_list.0.1.weight";
    let boxes = config.priors.boxes_per_location()[0];
    config.num_classes = checked_classes(conf0, out_channels(conf0)?, boxes)?;
    config.validate()?;
    Ok(config)
}

/// An NVIDIA SSD300 state dict's configuration: [`crate::SsdConfig::ssd300_resnet50`] with the
/// stem width, blocks per layer and extra widths its shapes show (NVIDIA's strides: 2, 2, 2,
/// then valid convs), and its classes.
fn nvidia_config(entries: &[(String, Vec<usize>)]) -> Result<crate::SsdConfig, StateDictError> {
    let shape = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| nvidia_key(k) == key)
            .map(|(_, shape)| shape.clone())
            .ok_or_else(|| StateDictError::MissingKey(key.to_owned()))
    };
    let out_channels = |key: &str| shape(key).map(|s| s.first().copied().unwrap_or(0));
    let width = out_channels("feature_extractor.feature_extractor.0.weight")?;
    let blocks = (4..=6)
        .map(|l| {
            (0..)
                .take_while(|b| {
                    let key = format!("feature_extractor.feature_extractor.{l}.{b}.conv1.weight");
                    entries.iter().any(|(k, _)| nvidia_key(k) == key)
                })
                .count()
        })
        .collect();
    let mut extras = Vec::new();
    for i in 0.. {
        let Ok(reduce) = out_channels(&format!("additional_blocks.{i}.0.weight")) else {
            break;
        };
        let source = out_channels(&format!("additional_blocks.{i}.3.weight"))?;
        let (stride, padding) = if i < 3 { (2, 1) } else { (1, 0) };
        extras.push(crate::ExtraConv::new(reduce, 1, 1, 0));
        extras.push(crate::ExtraConv::new(source, 3, stride, padding));
    }
    let mut config = crate::SsdConfig::ssd300_resnet50(2);
    config.base = crate::BaseConfig::Resnet(crate::ResNetBase {
        width,
        blocks,
        extras,
    });
    let boxes = config.priors.boxes_per_location()[0];
    config.num_classes = checked_classes("conf.0.weight", out_channels("conf.0.weight")?, boxes)?;
    config.validate()?;
    Ok(config)
}

/// The metadata stored in a native checkpoint by [`Ssd::save_checkpoint_with`] (plus Burn's own
/// `format`, `producer` and `version` entries).
pub fn checkpoint_metadata(path: &Path) -> Result<BTreeMap<String, String>, ModelError> {
    let reader = burn_pack::Reader::from_file_exact(path).map_err(|e| ModelError::Weights {
        path: path.to_owned(),
        message: format!("not a readable Burn checkpoint: {e}"),
    })?;
    Ok(reader.metadata().clone())
}

/// Float values and shape of one tensor.
pub type HostTensor = (Vec<f32>, Vec<usize>);

/// Reads every float tensor of a `.pth` by key (for fixtures and tools).
pub fn read_pth_tensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, ModelError> {
    let reader = PytorchReader::new(path).map_err(|e| ModelError::Weights {
        path: path.to_owned(),
        message: format!("not a readable PyTorch file: {e}"),
    })?;
    let mut out = BTreeMap::new();
    for key in reader.keys() {
        let t = read_f32(&reader, &key, path)?;
        out.insert(key, t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_written_before_the_seam_still_load() {
        use crate::SsdConfig;
        let device = burn::tensor::Device::default();
        let config = SsdConfig::small(3);
        let model = config.init(&device).expect("model");
        // The names of a checkpoint written before the network became an enum: no variant.
        let legacy: Vec<_> = model.collect(None, None, true);
        assert!(legacy.iter().any(|t| t.name == "vgg.0.weight"));
        let dir = std::env::temp_dir().join(format!("ssd-legacy-bpk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("legacy.bpk");
        burn_pack::Writer::new(legacy)
            .auto_extension(false)
            .write_to_file(&path)
            .expect("written");
        let loaded = config
            .init(&device)
            .expect("model")
            .load_checkpoint(&path)
            .expect("the legacy names load");
        let first = |m: &Ssd| {
            m.vgg().expect("VGG").vgg[0]
                .weight
                .val()
                .into_data()
                .iter::<f32>()
                .take(4)
                .collect::<Vec<f32>>()
        };
        assert_eq!(first(&loaded), first(&model));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn vgg16_sequential_indices() {
        assert_eq!(
            sequential_conv_indices(&[2, 2, 3, 3, 3]),
            vec![0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33]
        );
    }

    #[test]
    fn halves_convert() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(half_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn layouts_are_detected_from_keys() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            PthLayout::detect(&keys(&["vgg.0.weight", "L2Norm.weight", "loc.0.weight"])),
            Some(PthLayout::Amdegroot)
        );
        assert_eq!(
            PthLayout::detect(&keys(&["backbone.scale_weight"])),
            Some(PthLayout::Torchvision)
        );
        assert_eq!(
            PthLayout::detect(&keys(&["features.0.weight", "classifier.0.weight"])),
            Some(PthLayout::TorchvisionVgg16)
        );
        assert_eq!(
            PthLayout::detect(&keys(&["0.weight", "33.weight"])),
            Some(PthLayout::AmdegrootReducedFc)
        );
        assert_eq!(PthLayout::detect(&keys(&["fc.weight"])), None);
    }

    #[test]
    fn fc_layers_decimate_as_the_paper() {
        let fc6: Vec<f32> = (0..4096 * 25088).map(|i| i as f32).collect();
        let (w, s) = decimate(6, "weight", &fc6, &[4096, 25088]).expect("fc6");
        assert_eq!(s, vec![1024, 512, 3, 3]);
        // Output channel 1 is fc6 row 4; input channel 2; position (1, 2) is (3, 6) of the 7x7.
        let at = ((512 + 2) * 3 + 1) * 3 + 2; // [1, 2, 1, 2]
        assert_eq!(w[at], (4 * 25088 + 2 * 49 + 3 * 7 + 6) as f32);
        let fc7: Vec<f32> = (0..4096 * 4096).map(|i| i as f32).collect();
        let (w, s) = decimate(7, "weight", &fc7, &[4096, 4096]).expect("fc7");
        assert_eq!(s, vec![1024, 1024, 1, 1]);
        assert_eq!(w[5 * 1024 + 7], (20 * 4096 + 28) as f32);
        let (b, _) = decimate(
            6,
            "bias",
            &(0..4096).map(|i| i as f32).collect::<Vec<_>>(),
            &[4096],
        )
        .expect("bias");
        assert_eq!(b[3], 12.0);
    }
}
