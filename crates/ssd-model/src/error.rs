//! The error types of `ssd-model`: what can go wrong building, loading, saving or running a model,
//! each variant with the file, key or tensor a user can act on.

use std::fmt;
use std::path::PathBuf;

use crate::PthLayout;

/// What can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An inconsistent [`SsdConfig`](crate::SsdConfig).
    #[error("invalid SSD configuration: {0}")]
    Config(#[from] ConfigError),
    /// A PyTorch state dict that does not fit: unknown layout, backbone only, wrong shapes.
    #[error("{}: {source}", path.display())]
    StateDict {
        /// The `.pth` file.
        path: PathBuf,
        /// What does not fit.
        source: StateDictError,
    },
    /// A weights file that cannot be read or written (I/O, a foreign format error).
    #[error("{}: {message}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong, in the words of the layer that found it.
        message: String,
    },
    /// A native checkpoint whose metadata is missing or unreadable.
    #[error("{}: {problem}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        problem: CheckpointProblem,
    },
    /// A class list that does not fit the model's outputs.
    #[error(
        "{} predicts {num_classes} classes (with background) but the class list has {names} names",
        path.display()
    )]
    ClassCount {
        /// The weights file.
        path: PathBuf,
        /// Outputs of the model, background included.
        num_classes: usize,
        /// Names in the class list (background excluded).
        names: usize,
    },
    /// A post-processing threshold out of its range.
    #[error("post-processing: {0}")]
    Setting(#[from] ssd_core::SettingError),
    /// Detection inputs that do not fit together (images, sizes, priors).
    #[error("detection input: {0}")]
    Input(String),
    /// Reading results back from the device failed.
    #[error("reading results back from the device: {0}")]
    Device(String),
    /// The inference engine (ONNX Runtime) could not be loaded, set up or run.
    #[error("{0}")]
    Engine(String),
}

/// Why an [`SsdConfig`](crate::SsdConfig) is inconsistent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The prior configuration itself is invalid.
    #[error("{0}")]
    Priors(#[from] ssd_core::CoreError),
    /// A model name that is neither a preset nor a JSON file.
    #[error(
        "unknown model `{0}`: expected ssd300, ssd512, ssd300-coco, ssd512-coco, small, \
         ssdlite320 or a .json file"
    )]
    UnknownName(String),
    /// An input normalisation that is not numbers, or divides by zero or less.
    #[error("mean_rgb {mean:?} and std_rgb {std:?}: the means must be numbers, the stds positive")]
    Normalisation {
        /// The means.
        mean: [f64; 3],
        /// The standard deviations.
        std: [f64; 3],
    },
    /// Fewer than two classes (the count includes the background).
    #[error("num_classes is {0}; it counts the background, so it must be at least 2")]
    TooFewClasses(usize),
    /// A channel count, kernel, stride or dilation of zero.
    #[error("{0} is 0; it must be at least 1")]
    Zero(String),
    /// An L2Norm scale that is not a number.
    #[error("l2norm_scale is {0}; it must be a finite number")]
    L2NormScale(f64),
    /// An odd number of extra convs.
    #[error("extras come in pairs (reduce, source); got {0}")]
    UnpairedExtras(usize),
    /// A VGG source block that does not exist, or an empty block.
    #[error("the VGG source block must exist and every block needs a conv")]
    VggBlocks,
    /// The first conv of an extra pair is not a 1x1 reduction.
    #[error("the first conv of each extra pair must be 1x1, stride 1, no padding")]
    ExtraReduce,
    /// Feature maps of the network and of the priors disagree.
    #[error(
        "the network's sources are {sizes:?} cells at {input} px but the priors expect {maps:?}"
    )]
    FeatureMaps {
        /// Cells per side of each source, as the layers produce them.
        sizes: Vec<usize>,
        /// Cells per side the priors were made for.
        maps: Vec<usize>,
        /// The input side in pixels.
        input: usize,
    },
}

/// What is wrong with a native checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointProblem {
    /// The file has no entry of this metadata key: not written by `ssd`.
    #[error("no `{0}` metadata: not a checkpoint written by `ssd train`")]
    MissingMetadata(&'static str),
    /// The metadata entry does not parse.
    #[error("bad `{key}` metadata: {message}")]
    BadMetadata {
        /// The metadata key.
        key: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The file does not exist.
    #[error("trained model not found")]
    NotFound,
}

/// Why a state dict does not fit a model (or names no model).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateDictError {
    /// Keys of no known layout.
    #[error(
        "unknown key layout (first keys: {first_keys:?}); expected amdegroot, torchvision ssd300_vgg16 or ssdlite320_mobilenet_v3_large, lufficc, torchvision vgg16 or mobilenet_v3_large, or vgg16_reducedfc"
    )]
    UnknownLayout {
        /// A few of its keys, sorted.
        first_keys: Vec<String>,
    },
    /// An ImageNet backbone where a whole detector was asked for.
    #[error(
        "{0:?} is an ImageNet backbone, not a trained detector (use it as --pretrained-model for training)"
    )]
    BackboneOnly(PthLayout),
    /// A state dict in our own names, which fit every VGG configuration: the network must be
    /// named.
    #[error(
        "a state dict in ssd's own names does not say which network it holds: give its model \
         (a preset name or a model configuration file, --model)"
    )]
    ConfigNeeded,
    /// A tensor the layout needs is absent.
    #[error("no `{0}` in the state dict")]
    MissingKey(String),
    /// A MobileNetV3 whose widths no `width_mult` of torchvision's gives.
    #[error(
        "no MobileNetV3-Large width gives {expansion} channels at `{expansion_key}` and {last} at `{last_key}`"
    )]
    UnknownWidth {
        /// C4's expansion conv.
        expansion_key: String,
        /// Its output channels.
        expansion: usize,
        /// The last conv.
        last_key: String,
        /// Its output channels.
        last: usize,
    },
    /// A number of box heads that is neither SSD300's nor SSD512's.
    #[error("{0} box heads: neither SSD300 (6) nor SSD512 (7)")]
    HeadCount(usize),
    /// A classification head whose outputs are not a whole number of classes per box.
    #[error("`{key}` has {outputs} outputs, not a multiple of {boxes} boxes")]
    ClassOutputs {
        /// The head's weight.
        key: String,
        /// Its output channels.
        outputs: usize,
        /// Boxes per location of that level.
        boxes: usize,
    },
    /// Declared sizes beyond what any SSD has (refused before anything is allocated).
    #[error("{key} declares {value} {what}, more than the {limit} this program accepts")]
    TooLarge {
        /// The tensor.
        key: String,
        /// What is counted.
        what: &'static str,
        /// The declared number.
        value: usize,
        /// The largest accepted.
        limit: usize,
    },
    /// Tensors that do not match the model, each named.
    #[error("{layout:?} layout: {}", Problems(problems))]
    Mismatch {
        /// The layout the keys were read as.
        layout: PthLayout,
        /// Every problem found.
        problems: Vec<LoadProblem>,
    },
    /// The configuration derived from the keys is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// One tensor that does not fit the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadProblem {
    /// A tensor no parameter matches.
    Unused {
        /// The state dict key.
        key: String,
    },
    /// A tensor that maps to a parameter the model does not have.
    NoSuchParameter {
        /// The state dict key.
        key: String,
        /// The parameter it maps to.
        name: String,
    },
    /// A tensor of the wrong shape.
    Shape {
        /// The state dict key.
        key: String,
        /// The parameter it maps to.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The tensor's shape.
        found: Vec<usize>,
    },
    /// A parameter no tensor provides.
    Missing {
        /// The parameter.
        name: String,
        /// Its shape.
        expected: Vec<usize>,
    },
    /// A VGG fc tensor that cannot be decimated into a conv.
    Decimate {
        /// The state dict key.
        key: String,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// `6` or `7`.
        fc: usize,
    },
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unused { key } => {
                write!(f, "{key}: unused (no parameter of the model matches it)")
            }
            Self::NoSuchParameter { key, name } => {
                write!(f, "{key}: maps to {name}, which the model does not have")
            }
            Self::Shape {
                key,
                name,
                expected,
                found,
            } => write!(
                f,
                "{key} -> {name}: expected shape {expected:?}, found {found:?}"
            ),
            Self::Missing { name, expected } => {
                write!(f, "{name}: missing (expected shape {expected:?})")
            }
            Self::Decimate { key, shape, fc } => {
                write!(f, "{key}: cannot decimate shape {shape:?} into conv{fc}")
            }
        }
    }
}

struct Problems<'a>(&'a [LoadProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
