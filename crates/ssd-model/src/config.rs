//! Network configuration: [`SsdConfig`] and its presets.

use serde::{Deserialize, Serialize};
use ssd_core::PriorConfig;

use crate::{ConfigError, ModelError};

/// The VGG base: conv blocks separated by 2x2 max-pools, then pool5 (3x3, stride 1, pad 1), the
/// dilated conv6 (fc6) and the 1x1 conv7 (fc7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VggConfig {
    /// Output channels of each 3x3 conv, block by block (VGG16: 64,64 | 128,128 | 256x3 | 512x3 |
    /// 512x3).
    pub blocks: Vec<Vec<usize>>,
    /// The block whose 2x2 pool uses ceil mode (VGG16 in SSD: the third, index 2, so that conv4_3
    /// is 38x38 at 300 px).
    pub ceil_pool_block: usize,
    /// The block whose last conv is the first source (with L2Norm): conv4_3, index 3.
    pub source_block: usize,
    /// Channels of conv6 and conv7 (1024).
    pub fc_channels: usize,
    /// Dilation (and padding) of conv6 (6).
    pub fc_dilation: usize,
    /// Batch normalisation after every conv of the base and the extras (not in the paper's
    /// VGG16, whose ImageNet weights it uses; it lets small networks train from scratch).
    #[serde(default)]
    pub batch_norm: bool,
}

impl VggConfig {
    /// VGG16 as SSD uses it.
    pub fn vgg16() -> Self {
        Self {
            blocks: vec![
                vec![64, 64],
                vec![128, 128],
                vec![256, 256, 256],
                vec![512, 512, 512],
                vec![512, 512, 512],
            ],
            ceil_pool_block: 2,
            source_block: 3,
            fc_channels: 1024,
            fc_dilation: 6,
            batch_norm: false,
        }
    }

    /// Number of convs before conv6 (13 for VGG16).
    pub fn num_block_convs(&self) -> usize {
        self.blocks.iter().map(Vec::len).sum()
    }
}

/// One conv of the extra layers (after conv7). Extras come in pairs; the output of each pair's
/// second conv is a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraConv {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
}

impl ExtraConv {
    /// `ExtraConv { channels, kernel, stride, padding }`.
    pub const fn new(channels: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            channels,
            kernel,
            stride,
            padding,
        }
    }
}

/// The VGG base with what hangs on it: the paper's SSD (L2Norm on the first source, plain 3x3
/// heads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VggBase {
    /// The VGG convs.
    pub vgg: VggConfig,
    /// Extra layers, in pairs (`1x1` reduce, `3x3` source).
    pub extras: Vec<ExtraConv>,
    /// Initial L2Norm scale on conv4_3 (20, the paper's).
    #[serde(default = "default_l2norm_scale")]
    pub l2norm_scale: f64,
}

/// MobileNetV3-Large as torchvision's SSDLite builds on it: the sources are the C4 block's
/// expansion (672 channels, stride 16) and the end of the network (C5, stride 32), then one
/// source per extra block (1x1 to half the channels, 3x3 depthwise stride 2, 1x1; ReLU6); heads
/// are depthwise-separable (3x3 depthwise, batch norm, ReLU6, then a 1x1 conv). Batch norm eps
/// 0.001, hard-swish and squeeze-excitation as MobileNetV3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNetV3Base {
    /// The reduced tail (C4 and C5 blocks at half width: 80 channels out of C4, 480 out of C5),
    /// which torchvision builds when no ImageNet backbone is given (how its COCO weights were
    /// trained); without it, the full MobileNetV3-Large (160 and 960), which ImageNet weights fit.
    pub reduced_tail: bool,
    /// Every width of MobileNetV3's table times this, rounded to a multiple of 8 (torchvision's
    /// `width_mult`; 1 for SSDLite320).
    #[serde(default = "one")]
    pub width_mult: f64,
    /// Output channels of each extra block (torchvision: 512, 256, 256, 128).
    pub extras: Vec<usize>,
}

fn one() -> f64 {
    1.0
}

/// ResNet as NVIDIA's SSD300 v1.1 builds on it: torchvision's ResNet (v1.5 bottlenecks, the
/// stride on the 3x3 conv) up to `layer3`, whose first block has stride 1 so that the first
/// source stays at stride 8 (38x38 with 1,024 channels at 300 px for ResNet-50); then extra
/// layers in pairs (1x1 reduce, 3x3 source), each conv bias-free and followed by batch norm and
/// ReLU; plain 3x3 heads. Batch norm eps 1e-5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetBase {
    /// Channels of the stem (64 for ResNet-50). `layer1..3`'s bottlenecks are `width`, `2 width`
    /// and `4 width` wide inside, four times that out.
    pub width: usize,
    /// Bottleneck blocks of `layer1`, `layer2` and `layer3` (`[3, 4, 6]` for ResNet-50).
    pub blocks: Vec<usize>,
    /// Extra layers, in pairs (`1x1` reduce, `3x3` source; NVIDIA's: 256 -> 512 stride 2,
    /// 256 -> 512 stride 2, 128 -> 256 stride 2, then 128 -> 256 twice without padding).
    pub extras: Vec<ExtraConv>,
}

impl ResNetBase {
    /// ResNet-50 with NVIDIA's five extra blocks.
    pub fn resnet50() -> Self {
        Self {
            width: 64,
            blocks: vec![3, 4, 6],
            extras: vec![
                ExtraConv::new(256, 1, 1, 0),
                ExtraConv::new(512, 3, 2, 1),
                ExtraConv::new(256, 1, 1, 0),
                ExtraConv::new(512, 3, 2, 1),
                ExtraConv::new(128, 1, 1, 0),
                ExtraConv::new(256, 3, 2, 1),
                ExtraConv::new(128, 1, 1, 0),
                ExtraConv::new(256, 3, 1, 0),
                ExtraConv::new(128, 1, 1, 0),
                ExtraConv::new(256, 3, 1, 0),
            ],
        }
    }

    /// Channels out of `layer3`, the first source (`16 width`: 1,024 for ResNet-50).
    pub fn layer3_channels(&self) -> usize {
        16 * self.width
    }

    /// Three layers of at least one block, a stem of at least one channel, extras as
    /// [`VggBase`]'s.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.width == 0 {
            return Err(ConfigError::Zero("width (channels)".to_owned()));
        }
        if self.blocks.len() != 3 || self.blocks.contains(&0) {
            return Err(ConfigError::Zero(format!(
                "blocks {:?} (three layers of at least one block)",
                self.blocks
            )));
        }
        check_extras(&self.extras)
    }
}

/// The base network of an SSD and the layers that hang on it; the heads follow the base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BaseConfig {
    /// VGG: the paper's SSD300/SSD512, the small preset.
    Vgg(VggBase),
    /// MobileNetV3-Large: torchvision's SSDLite.
    MobilenetV3(MobileNetV3Base),
    /// ResNet: NVIDIA's SSD300 v1.1.
    Resnet(ResNetBase),
}

/// Everything that defines an SSD network. Build with a preset ([`SsdConfig::ssd300`],
/// [`SsdConfig::ssd512`], [`SsdConfig::small`], [`SsdConfig::ssdlite320`]) and
/// [`SsdConfig::init`]. As JSON (model files, checkpoint metadata) an unknown key is an error, so
/// a misspelt setting cannot pass unseen; files of the VGG network written before there were
/// other bases (`vgg`, `extras` and `l2norm_scale` beside `priors`) read as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ConfigFile")]
pub struct SsdConfig {
    /// Classes including background (21 for VOC).
    pub num_classes: usize,
    /// The base network, its extra layers and (by the base) its heads.
    pub base: BaseConfig,
    /// The priors; one level per source, and the heads' box counts follow from it.
    pub priors: PriorConfig,
    /// Subtracted from each RGB channel of the 0..255 input (VOC's mean, `[123, 117, 104]`, for
    /// the VGG networks, as amdegroot, lufficc and torchvision's `ssd300_vgg16`; 127.5 for
    /// SSDLite, whose input is `(x / 255 - 0.5) / 0.5`).
    pub mean_rgb: [f64; 3],
    /// Then each channel is divided by this (1 for the VGG networks, 127.5 for SSDLite).
    pub std_rgb: [f64; 3],
}

/// [`SsdConfig`] as files hold it: with `base`, or the VGG keys of earlier files.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    num_classes: usize,
    #[serde(default)]
    base: Option<BaseConfig>,
    #[serde(default)]
    vgg: Option<VggConfig>,
    #[serde(default)]
    extras: Option<Vec<ExtraConv>>,
    #[serde(default)]
    l2norm_scale: Option<f64>,
    priors: PriorConfig,
    #[serde(default)]
    mean_rgb: Option<[f64; 3]>,
    #[serde(default)]
    std_rgb: Option<[f64; 3]>,
}

impl TryFrom<ConfigFile> for SsdConfig {
    type Error = String;

    fn try_from(f: ConfigFile) -> Result<Self, String> {
        let base = match (f.base, f.vgg) {
            (Some(base), None) if f.extras.is_none() && f.l2norm_scale.is_none() => base,
            (None, Some(vgg)) => BaseConfig::Vgg(VggBase {
                vgg,
                extras: f.extras.unwrap_or_default(),
                l2norm_scale: f.l2norm_scale.unwrap_or_else(default_l2norm_scale),
            }),
            (None, None) => return Err("missing field `base`".to_owned()),
            _ => {
                return Err(
                    "`base` and the VGG keys of earlier files (`vgg`, `extras`, `l2norm_scale`) \
                     are given together; give `base` alone"
                        .to_owned(),
                );
            }
        };
        Ok(Self {
            num_classes: f.num_classes,
            base,
            priors: f.priors,
            mean_rgb: f.mean_rgb.unwrap_or(VOC_MEAN),
            std_rgb: f.std_rgb.unwrap_or([1.0; 3]),
        })
    }
}

/// VOC's mean RGB, in 0..255 (amdegroot's `(123, 117, 104)`).
const VOC_MEAN: [f64; 3] = [123.0, 117.0, 104.0];

fn default_l2norm_scale() -> f64 {
    20.0
}

impl SsdConfig {
    /// A VGG configuration from its parts, with the paper's L2Norm scale (20) and VOC's mean.
    pub fn new(
        num_classes: usize,
        vgg: VggConfig,
        extras: Vec<ExtraConv>,
        priors: PriorConfig,
    ) -> Self {
        Self {
            num_classes,
            base: BaseConfig::Vgg(VggBase {
                vgg,
                extras,
                l2norm_scale: default_l2norm_scale(),
            }),
            priors,
            mean_rgb: VOC_MEAN,
            std_rgb: [1.0; 3],
        }
    }

    /// The VGG base, for a VGG network.
    pub fn vgg_base(&self) -> Option<&VggBase> {
        match &self.base {
            BaseConfig::Vgg(v) => Some(v),
            BaseConfig::MobilenetV3(_) | BaseConfig::Resnet(_) => None,
        }
    }

    /// The VGG base, for a VGG network, to change it.
    pub fn vgg_base_mut(&mut self) -> Option<&mut VggBase> {
        match &mut self.base {
            BaseConfig::Vgg(v) => Some(v),
            BaseConfig::MobilenetV3(_) | BaseConfig::Resnet(_) => None,
        }
    }

    /// SSD300 (the paper's VOC model): VGG16, extras conv8-conv11, 8732 priors.
    pub fn ssd300(num_classes: usize) -> Self {
        let extras = vec![
            ExtraConv::new(256, 1, 1, 0),
            ExtraConv::new(512, 3, 2, 1),
            ExtraConv::new(128, 1, 1, 0),
            ExtraConv::new(256, 3, 2, 1),
            ExtraConv::new(128, 1, 1, 0),
            ExtraConv::new(256, 3, 1, 0),
            ExtraConv::new(128, 1, 1, 0),
            ExtraConv::new(256, 3, 1, 0),
        ];
        Self::new(
            num_classes,
            VggConfig::vgg16(),
            extras,
            PriorConfig::ssd300_voc(),
        )
    }

    /// SSD512: VGG16, extras conv8-conv12 (conv12_2 a 4x4 conv with padding 1), 24564 priors.
    pub fn ssd512(num_classes: usize) -> Self {
        let extras = vec![
            ExtraConv::new(256, 1, 1, 0),
            ExtraConv::new(512, 3, 2, 1),
            ExtraConv::new(128, 1, 1, 0),
            ExtraConv::new(256, 3, 2, 1),
            ExtraConv::new(128, 1, 1, 0),
            ExtraConv::new(256, 3, 2, 1),
            ExtraConv::new(128, 1, 1, 0),
            ExtraConv::new(256, 3, 2, 1),
            ExtraConv::new(128, 1, 1, 0),
            ExtraConv::new(256, 4, 1, 1),
        ];
        Self::new(
            num_classes,
            VggConfig::vgg16(),
            extras,
            PriorConfig::ssd512_voc(),
        )
    }

    /// SSD300 for COCO: [`SsdConfig::ssd300`] with the COCO prior sizes
    /// ([`PriorConfig::ssd300_coco`]); 81 classes for COCO itself.
    pub fn ssd300_coco(num_classes: usize) -> Self {
        Self {
            priors: PriorConfig::ssd300_coco(),
            ..Self::ssd300(num_classes)
        }
    }

    /// SSD512 for COCO: [`SsdConfig::ssd512`] with the COCO prior sizes
    /// ([`PriorConfig::ssd512_coco`]).
    pub fn ssd512_coco(num_classes: usize) -> Self {
        Self {
            priors: PriorConfig::ssd512_coco(),
            ..Self::ssd512(num_classes)
        }
    }

    /// A small CPU-friendly SSD for the quickstart and tests, trained from scratch: a narrow VGG
    /// with batch norm (one conv in each of the first two blocks, widths 16 to 128), 128-pixel
    /// input and five levels (16, 8, 4, 2, 1) of its own priors (1,524 in all). About a third of
    /// a GFLOP per image, a thirtieth of SSD300's.
    pub fn small(num_classes: usize) -> Self {
        let vgg = VggConfig {
            blocks: vec![vec![16], vec![32], vec![64, 64], vec![128, 128], vec![128]],
            ceil_pool_block: 2,
            source_block: 3,
            fc_channels: 256,
            fc_dilation: 2,
            batch_norm: true,
        };
        let extras = vec![
            ExtraConv::new(64, 1, 1, 0),
            ExtraConv::new(128, 3, 2, 1),
            ExtraConv::new(64, 1, 1, 0),
            ExtraConv::new(128, 3, 2, 1),
            ExtraConv::new(64, 1, 1, 0),
            ExtraConv::new(128, 3, 2, 1),
        ];
        let priors = PriorConfig {
            image_size: 128,
            feature_maps: vec![16, 8, 4, 2, 1],
            steps: vec![8.0, 16.0, 32.0, 64.0, 128.0],
            min_sizes: vec![13.0, 32.0, 58.0, 83.0, 109.0],
            max_sizes: vec![32.0, 58.0, 83.0, 109.0, 134.0],
            aspect_ratios: vec![
                vec![2.0],
                vec![2.0, 3.0],
                vec![2.0, 3.0],
                vec![2.0],
                vec![2.0],
            ],
            clip: ssd_core::PriorClip::All,
        };
        Self::new(num_classes, vgg, extras, priors)
    }

    /// SSDLite320 on MobileNetV3-Large, torchvision's `ssdlite320_mobilenet_v3_large`: the
    /// reduced tail, extras of 512, 256, 256 and 128 channels, 320-pixel input normalised to
    /// `[-1, 1]`, and `DefaultBoxGenerator([[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95)`'s boxes
    /// ([`PriorConfig::ssdlite320`]: 3,234 on maps of 20, 10, 5, 3, 2, 1).
    pub fn ssdlite320(num_classes: usize) -> Self {
        Self {
            num_classes,
            base: BaseConfig::MobilenetV3(MobileNetV3Base {
                reduced_tail: true,
                width_mult: 1.0,
                extras: vec![512, 256, 256, 128],
            }),
            priors: PriorConfig::ssdlite320(),
            mean_rgb: [127.5; 3],
            std_rgb: [127.5; 3],
        }
    }

    /// NVIDIA's SSD300 v1.1: ResNet-50 ([`ResNetBase::resnet50`]), the COCO prior sizes of
    /// [`PriorConfig::ssd300_coco`] (NVIDIA's `dboxes300_coco`: scales 21 ... 315, 8,732 boxes,
    /// clipped), ImageNet's mean and standard deviation (torchvision's normalisation, which
    /// NVIDIA's data pipeline applies); 81 classes for COCO.
    pub fn ssd300_resnet50(num_classes: usize) -> Self {
        Self {
            num_classes,
            base: BaseConfig::Resnet(ResNetBase::resnet50()),
            priors: PriorConfig::ssd300_coco(),
            mean_rgb: [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
            std_rgb: [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
        }
    }

    /// Input side in pixels (the priors' `image_size`).
    pub fn input_size(&self) -> usize {
        self.priors.image_size as usize
    }

    /// Channels of each source: VGG's conv4_3, conv7, then every second extra; MobileNetV3's
    /// C4 expansion (672), C5, then each extra block.
    pub fn source_channels(&self) -> Vec<usize> {
        match &self.base {
            BaseConfig::Vgg(b) => {
                let conv4_3 = b.vgg.blocks[b.vgg.source_block]
                    .last()
                    .copied()
                    .unwrap_or(0);
                let mut out = vec![conv4_3, b.vgg.fc_channels];
                out.extend(b.extras.iter().skip(1).step_by(2).map(|e| e.channels));
                out
            }
            BaseConfig::MobilenetV3(b) => {
                let mut out = vec![b.c4_expansion(), b.c5_channels()];
                out.extend(&b.extras);
                out
            }
            BaseConfig::Resnet(b) => {
                let mut out = vec![b.layer3_channels()];
                out.extend(b.extras.iter().skip(1).step_by(2).map(|e| e.channels));
                out
            }
        }
    }

    /// Side of each source's feature map for the configured input size, from the layer
    /// arithmetic (what the network will produce).
    pub fn source_sizes(&self) -> Vec<usize> {
        let mut size = self.input_size();
        let mut out = Vec::new();
        match &self.base {
            BaseConfig::Vgg(b) => {
                let last_block = b.vgg.blocks.len().saturating_sub(1);
                for i in 0..b.vgg.blocks.len() {
                    if i == b.vgg.source_block {
                        out.push(size);
                    }
                    if i < last_block {
                        size = if i == b.vgg.ceil_pool_block {
                            size.div_ceil(2)
                        } else {
                            size / 2
                        };
                    }
                }
                // pool5 (3x3 s1 p1), conv6 (dilation d, padding d) and conv7 keep the size.
                out.push(size);
                extra_sizes(&b.extras, size, &mut out);
            }
            BaseConfig::Resnet(b) => {
                // conv1 (7x7, stride 2, padding 3), the max-pool (3x3, stride 2, padding 1) and
                // layer2's first block (3x3, stride 2, padding 1) each halve, rounding up.
                for _ in 0..3 {
                    size = size.div_ceil(2);
                }
                out.push(size);
                extra_sizes(&b.extras, size, &mut out);
            }
            BaseConfig::MobilenetV3(b) => {
                // Every stride-2 layer pads by half its kernel: each halves, rounding up. The C4
                // tap follows four of them, C5 five, each extra block one more.
                for _ in 0..4 {
                    size = size.div_ceil(2);
                }
                out.push(size);
                for _ in 0..=b.extras.len() {
                    size = size.div_ceil(2);
                    out.push(size);
                }
            }
        }
        out
    }

    /// Checks that the priors are valid and match the network: one level per source, each level's
    /// feature map the size the layers produce.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.priors.validate().map_err(ConfigError::Priors)?;
        if self.num_classes < 2 {
            return Err(ConfigError::TooFewClasses(self.num_classes));
        }
        if !self.mean_rgb.iter().all(|m| m.is_finite())
            || !self.std_rgb.iter().all(|s| s.is_finite() && *s > 0.0)
        {
            return Err(ConfigError::Normalisation {
                mean: self.mean_rgb,
                std: self.std_rgb,
            });
        }
        match &self.base {
            BaseConfig::Vgg(b) => b.validate()?,
            BaseConfig::MobilenetV3(b) => b.validate()?,
            BaseConfig::Resnet(b) => b.validate()?,
        }
        let sizes = self.source_sizes();
        let maps: Vec<usize> = self
            .priors
            .feature_maps
            .iter()
            .map(|&m| m as usize)
            .collect();
        if sizes != maps {
            return Err(ConfigError::FeatureMaps {
                sizes,
                maps,
                input: self.input_size(),
            });
        }
        Ok(())
    }

    /// The configuration a name stands for: a preset (`ssd300`, `ssd512`, `ssd300-coco`,
    /// `ssd512-coco`, `small`, `ssdlite320`, `ssdlite320-coco`) or a JSON file of `SsdConfig` (`*.json`), with
    /// `num_classes` classes (background included), validated.
    pub fn named(name: &str, num_classes: usize) -> Result<Self, ModelError> {
        let mut config = match name {
            "ssd300" => Self::ssd300(num_classes),
            "ssd512" => Self::ssd512(num_classes),
            "ssd300-coco" => Self::ssd300_coco(num_classes),
            "ssd512-coco" => Self::ssd512_coco(num_classes),
            "small" => Self::small(num_classes),
            "ssdlite320" | "ssdlite320-coco" => Self::ssdlite320(num_classes),
            "ssd300-resnet50" | "ssd300-resnet50-coco" => Self::ssd300_resnet50(num_classes),
            file if file.ends_with(".json") => {
                let weights_error = |message: String| ModelError::Weights {
                    path: file.into(),
                    message,
                };
                let text = std::fs::read_to_string(file)
                    .map_err(|e| weights_error(format!("cannot read model config: {e}")))?;
                serde_json::from_str::<Self>(&text)
                    .map_err(|e| weights_error(format!("not a model config: {e}")))?
            }
            other => return Err(ConfigError::UnknownName(other.to_owned()).into()),
        };
        config.num_classes = num_classes;
        config.validate()?;
        Ok(config)
    }

    /// The name of the preset this configuration is (with any number of classes), `None` for a
    /// custom one.
    pub fn preset_name(&self) -> Option<&'static str> {
        PRESETS
            .into_iter()
            .find(|name| Self::named(name, self.num_classes).is_ok_and(|preset| preset == *self))
    }

    /// The network's test settings, where a detector starts: the paper's for VGG (score 0.01,
    /// 400 per class, NMS 0.45, 200 per image); torchvision's for SSDLite (score 0.001, 300 per
    /// class, NMS 0.55, 300 per image); NVIDIA's for the ResNet SSD (`decode_batch` in their
    /// evaluation: score 0.05, 200 per class, NMS 0.5, 200 per image).
    pub fn test_post_process(&self) -> crate::PostProcessConfig {
        match self.base {
            BaseConfig::Vgg(_) => crate::PostProcessConfig::default(),
            BaseConfig::MobilenetV3(_) => crate::PostProcessConfig {
                min_score: 0.001,
                top_k_per_class: 300,
                nms_overlap: 0.55,
                top_k: 300,
            },
            BaseConfig::Resnet(_) => crate::PostProcessConfig {
                min_score: 0.05,
                top_k_per_class: 200,
                nms_overlap: 0.5,
                top_k: 200,
            },
        }
    }

    /// Whether detection clips decoded boxes to the image before NMS, as torchvision's
    /// `SSD.postprocess_detections` does, rather than after it, as amdegroot, lufficc and NVIDIA
    /// do. Networks in torchvision's conventions are those with its default boxes, clipped in size
    /// only ([`ssd_core::PriorClip::Sizes`]: SSDLite320, and SSD300 with torchvision's
    /// `ssd300_vgg16` boxes).
    pub fn clips_before_nms(&self) -> bool {
        self.priors.clip == ssd_core::PriorClip::Sizes
    }

    /// Number of priors `P` (rows of `loc` and `conf`).
    pub fn num_priors(&self) -> usize {
        self.priors.num_priors()
    }
}

/// The presets [`SsdConfig::named`] knows (`ssdlite320-coco` is `ssdlite320`'s network under
/// torchvision's COCO recipe).
pub const PRESETS: [&str; 9] = [
    "ssd300",
    "ssd512",
    "ssd300-coco",
    "ssd512-coco",
    "small",
    "ssdlite320",
    "ssdlite320-coco",
    "ssd300-resnet50",
    "ssd300-resnet50-coco",
];

impl VggBase {
    /// Pairs of extras with 1x1 reduce convs, VGG blocks that exist, no zero sizes, an L2Norm
    /// scale that is a number.
    fn validate(&self) -> Result<(), ConfigError> {
        check_extras(&self.extras)?;
        self.check_sizes()?;
        if self.vgg.source_block >= self.vgg.blocks.len()
            || self.vgg.blocks.iter().any(Vec::is_empty)
        {
            return Err(ConfigError::VggBlocks);
        }
        Ok(())
    }

    /// Every channel count, kernel, stride and dilation at least 1 (a zero would divide by zero
    /// or build an empty layer), and an L2Norm scale that is a number.
    fn check_sizes(&self) -> Result<(), ConfigError> {
        let zero = |what: String| Err(ConfigError::Zero(what));
        for (b, block) in self.vgg.blocks.iter().enumerate() {
            if let Some(i) = block.iter().position(|&c| c == 0) {
                return zero(format!("vgg.blocks[{b}][{i}] (channels)"));
            }
        }
        if self.vgg.fc_channels == 0 {
            return zero("vgg.fc_channels".to_owned());
        }
        if self.vgg.fc_dilation == 0 {
            return zero("vgg.fc_dilation".to_owned());
        }
        if !self.l2norm_scale.is_finite() {
            return Err(ConfigError::L2NormScale(self.l2norm_scale));
        }
        Ok(())
    }
}

/// Extra layers in pairs whose first conv is a 1x1 reduce (stride 1, no padding), and no zero
/// channel count, kernel or stride (a zero would divide by zero or build an empty layer).
fn check_extras(extras: &[ExtraConv]) -> Result<(), ConfigError> {
    for (i, e) in extras.iter().enumerate() {
        for (value, name) in [
            (e.channels, "channels"),
            (e.kernel, "kernel"),
            (e.stride, "stride"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(format!("extras[{i}].{name}")));
            }
        }
    }
    if !extras.len().is_multiple_of(2) {
        return Err(ConfigError::UnpairedExtras(extras.len()));
    }
    if extras
        .iter()
        .step_by(2)
        .any(|e| e.kernel != 1 || e.stride != 1 || e.padding != 0)
    {
        return Err(ConfigError::ExtraReduce);
    }
    Ok(())
}

/// Appends the side of each extra pair's output to `out`, from `size`.
fn extra_sizes(extras: &[ExtraConv], mut size: usize, out: &mut Vec<usize>) {
    for e in extras.iter().skip(1).step_by(2) {
        size = (size + 2 * e.padding).saturating_sub(e.kernel) / e.stride + 1;
        out.push(size);
    }
}

impl MobileNetV3Base {
    /// Channels out of C5: 6 times C4's output (960, or 480 with the reduced tail).
    pub fn c5_channels(&self) -> usize {
        6 * crate::lite::c4_channels(self.reduced_tail, self.width_mult)
    }

    /// Channels of C4's expansion, the first source (672 at width 1).
    pub fn c4_expansion(&self) -> usize {
        crate::lite::c4_expansion(self.width_mult)
    }

    /// A positive width, extra blocks of at least 2 channels (their first conv has half).
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.width_mult.is_finite() && self.width_mult > 0.0 && self.width_mult <= 8.0) {
            return Err(ConfigError::Zero(format!(
                "width_mult {} (must be in (0, 8])",
                self.width_mult
            )));
        }
        if let Some(i) = self.extras.iter().position(|&c| c < 2) {
            return Err(ConfigError::Zero(format!(
                "extras[{i}] (channels; at least 2)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sizes_and_unknown_keys_are_errors_not_panics() {
        let base = SsdConfig::small(3);
        base.validate().expect("the preset is valid");
        fn vgg(c: &mut SsdConfig) -> &mut VggBase {
            c.vgg_base_mut().expect("VGG")
        }
        let mut stride = base.clone();
        vgg(&mut stride).extras[1].stride = 0;
        let mut channels = base.clone();
        vgg(&mut channels).vgg.blocks[0][0] = 0;
        let mut dilation = base.clone();
        vgg(&mut dilation).vgg.fc_dilation = 0;
        let mut kernel = base.clone();
        vgg(&mut kernel).extras[3].kernel = 0;
        for (config, what) in [
            (stride, "extras[1].stride"),
            (channels, "vgg.blocks[0][0]"),
            (dilation, "vgg.fc_dilation"),
            (kernel, "extras[3].kernel"),
        ] {
            match config.validate() {
                Err(ConfigError::Zero(w)) => assert!(w.starts_with(what), "{w}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        let mut json = serde_json::to_value(&base).expect("json");
        json["base"]["extras"][0]["strde"] = 1.into();
        let err = serde_json::from_value::<SsdConfig>(json).expect_err("a misspelt key");
        assert!(err.to_string().contains("strde"), "{err}");
        let mut json = serde_json::to_value(&base).expect("json");
        json["l2norm"] = 1.into();
        assert!(serde_json::from_value::<SsdConfig>(json).is_err());
    }

    #[test]
    fn files_round_trip_and_earlier_vgg_files_read_as_they_are() {
        for config in [
            SsdConfig::ssd300(21),
            SsdConfig::small(6),
            SsdConfig::ssdlite320(91),
            SsdConfig::ssd300_resnet50(81),
        ] {
            let text = serde_json::to_string(&config).expect("json");
            let back: SsdConfig = serde_json::from_str(&text).expect("reads back");
            assert_eq!(back, config);
        }
        // A configuration as files held it before there were other bases.
        let base = SsdConfig::small(6);
        let vgg = base.vgg_base().expect("VGG").clone();
        let legacy = serde_json::json!({
            "num_classes": 6,
            "vgg": vgg.vgg,
            "extras": vgg.extras,
            "priors": base.priors,
            "l2norm_scale": 20.0,
        });
        let read: SsdConfig = serde_json::from_value(legacy.clone()).expect("legacy");
        assert_eq!(read, base);
        let mut both = legacy;
        both["base"] = serde_json::to_value(&base.base).expect("json");
        let err = serde_json::from_value::<SsdConfig>(both).expect_err("both forms");
        assert!(err.to_string().contains("give `base` alone"), "{err}");
    }

    #[test]
    fn presets_match_their_priors() {
        for (config, priors, sizes) in [
            (SsdConfig::ssd300(21), 8732, vec![38, 19, 10, 5, 3, 1]),
            (SsdConfig::ssd512(21), 24564, vec![64, 32, 16, 8, 4, 2, 1]),
            (SsdConfig::small(6), 1524, vec![16, 8, 4, 2, 1]),
            (SsdConfig::ssdlite320(91), 3234, vec![20, 10, 5, 3, 2, 1]),
            (
                SsdConfig::ssd300_resnet50(81),
                8732,
                vec![38, 19, 10, 5, 3, 1],
            ),
        ] {
            config.validate().expect("preset is consistent");
            assert_eq!(config.num_priors(), priors);
            assert_eq!(config.source_sizes(), sizes);
        }
        assert_eq!(
            SsdConfig::ssd300(21).source_channels(),
            vec![512, 1024, 512, 256, 256, 256]
        );
        assert_eq!(
            SsdConfig::ssd300_resnet50(81).source_channels(),
            vec![1024, 512, 512, 256, 256, 256]
        );
    }

    #[test]
    fn mismatches_are_errors() {
        let mut config = SsdConfig::ssd300(21);
        config.priors.image_size = 320;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::FeatureMaps { input: 320, .. })
        ));
        let mut config = SsdConfig::ssd300(21);
        config.vgg_base_mut().expect("VGG").extras.pop();
        assert!(config.validate().is_err());
        assert!(SsdConfig::ssd300(1).validate().is_err());
    }
}
