//! What a training run is given: the recipe ([`TrainConfig`], plain data saved with every
//! checkpoint) and the typed values that are not plain data ([`TrainSettings`]: the device, the
//! network configuration, the class list).

use std::path::{Path, PathBuf};

use std::sync::Arc;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use ssd_data::{ClassList, DetectionDataset};
use ssd_model::SsdConfig;

use crate::TrainError;

/// Declares every recipe setting once: its doc (the flag's help), its type, its default (the
/// paper's), its flag's parsing, and whether it may be absent. From that list come
/// [`TrainConfig`] (all of them, saved in checkpoints), its `Default`, and [`TrainOverrides`]
/// (each optional: what a settings file or the flags say), with [`TrainOverrides::apply`].
macro_rules! recipe {
    (
        $(
            $(#[doc = $doc:literal])*
            $(#[arg($($arg:tt)*)])?
            $name:ident : $ty:ty = $default:expr
        ),* $(,)?
        ;
        $(
            $(#[doc = $odoc:literal])*
            $oname:ident : Option<$oty:ty>
        ),* $(,)?
    ) => {
        /// The recipe of a run: data, optimisation, output. Defaults are the paper's (Caffe
        /// `ssd_pascal.py`: SGD lr 1e-3, momentum 0.9, weight decay 5e-4, batch 32, 120k
        /// iterations, x0.1 at 80k and 100k; biases at 2x lr without weight decay). Saved in each
        /// checkpoint's `train.json` under `config`, keys named like the `ssd train` flags
        /// (`batch-size`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
        pub struct TrainConfig {
            $( $(#[doc = $doc])* pub $name: $ty, )*
            $(
                $(#[doc = $odoc])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $oname: Option<$oty>,
            )*
        }

        impl Default for TrainConfig {
            fn default() -> Self {
                Self {
                    $( $name: $default, )*
                    $( $oname: None, )*
                }
            }
        }

        /// What a settings file or the command line asks of a run's recipe, each setting
        /// optional (absent: what the checkpoint, the file or the recipe preset says), and the
        /// network, classes and backend to use. Keys and flags are [`TrainConfig`]'s names in
        /// kebab case (`batch-size = 32`, `--batch-size 32`). With the `clap` feature, these are
        /// the flags of `ssd train` (defaults shown by [`show_defaults`](crate::show_defaults)).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::Args))]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        pub struct TrainOverrides {
            $(
                $(#[doc = $doc])*
                #[cfg_attr(feature = "clap", arg(long $(, $($arg)*)?))]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
            $(
                $(#[doc = $odoc])*
                #[cfg_attr(feature = "clap", arg(long))]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $oname: Option<$oty>,
            )*
            /// Network: ssd300, ssd512, ssd300-coco, ssd512-coco, small, ssdlite320,
            /// ssdlite320-coco, ssd300-resnet50, ssd300-resnet50-coco, or a JSON model configuration
            /// file.
            #[cfg_attr(feature = "clap", arg(long))]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub model: Option<String>,
            /// Class list, one name per line (else the dataset's own: a COCO file's categories,
            /// a VOC root's `classes.txt`, or the 20 VOC classes).
            #[cfg_attr(feature = "clap", arg(long))]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub classes: Option<PathBuf>,
            /// Backend by name: flex, tch, wgpu or cuda (else the first compiled in).
            #[cfg_attr(feature = "clap", arg(long))]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub backend: Option<String>,
        }

        impl TrainOverrides {
            /// Sets in `config` every recipe setting this asks for.
            pub fn apply(&self, config: &mut TrainConfig) {
                $( if let Some(v) = &self.$name { config.$name = v.clone(); } )*
                $( if let Some(v) = &self.$oname { config.$oname = Some(v.clone()); } )*
            }

            /// This, with every setting `over` asks for asked for instead.
            #[must_use]
            pub fn then(mut self, over: &TrainOverrides) -> Self {
                $( if over.$name.is_some() { self.$name.clone_from(&over.$name); } )*
                $( if over.$oname.is_some() { self.$oname.clone_from(&over.$oname); } )*
                if over.model.is_some() { self.model.clone_from(&over.model); }
                if over.classes.is_some() { self.classes.clone_from(&over.classes); }
                if over.backend.is_some() { self.backend.clone_from(&over.backend); }
                self
            }
        }
    };
}

recipe! {
    /// Dataset roots, comma-separated: VOC roots (`VOC2007,VOC2012`), COCO roots (holding
    /// `annotations/instances_<datanames>.json`) or COCO `.json` files.
    #[arg(value_delimiter = ',')]
    dataroot: Vec<PathBuf> = Vec::new(),
    /// Image set (VOC `ImageSets/Main/<name>.txt`) or COCO annotation set
    /// (`instances_<name>.json`).
    datanames: String = "trainval".to_owned(),
    /// Drop difficult objects from the training targets.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    discard_difficult: bool = false,
    /// The SSD augmentation (else resize only).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    use_augment: bool = true,
    /// Largest zoom-out canvas of the augmentation, as a multiple of the image side (the
    /// paper's 4; 1 turns zoom-out off).
    expand_ratio: f64 = 4.0,
    /// Photometric distortion in the augmentation (brightness, contrast, saturation, hue; the
    /// paper's).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    photometric: bool = true,
    /// Images per iteration.
    batch_size: usize = 32,
    /// Iterations to train to (a resumed run continues up to this count).
    iterations: u64 = 120_000,
    /// Base learning rate.
    lr: f64 = 1e-3,
    /// Learning-rate schedule: `step` (times `gamma` at each `lr-decay` iteration) or `cosine`
    /// (half a cosine from `lr` down to 0 over the run).
    lr_schedule: LrSchedule = LrSchedule::Step,
    /// Iterations at which the learning rate is multiplied by `gamma`, comma-separated (the
    /// `step` schedule).
    #[arg(value_delimiter = ',')]
    lr_decay: Vec<u64> = vec![80_000, 100_000],
    /// Step decay factor.
    gamma: f64 = 0.1,
    /// SGD momentum.
    momentum: f64 = 0.9,
    /// L2 weight decay (not on biases with `caffe-bias`).
    weight_decay: f64 = 5e-4,
    /// Clip the global gradient norm to this value (0: off).
    clip_grad: f64 = 0.0,
    /// IoU for a prior to match a ground truth.
    overlap_threshold: f64 = 0.5,
    /// Hard negatives per positive.
    negpos_ratio: f64 = 3.0,
    /// Weight of the localisation loss.
    alpha: f64 = 1.0,
    /// Device indices of the backend, comma-separated. With several, training is data-parallel:
    /// each device takes an equal share of every batch, so `batch-size` must be a multiple of
    /// their number. Empty: the backend's first device.
    #[arg(value_delimiter = ',')]
    devices: Vec<usize> = Vec::new(),
    /// Data loading threads.
    workers: usize = 4,
    /// Seed of the initialisation, the data order and the augmentation.
    seed: u64 = 0,
    /// Float type of the weights and the computation: `fp32`, or `fp64` where the backend
    /// computes in float64 (Flex; several times slower), for comparing a run with a float64
    /// reference and for numerical debugging. A backend without float64 refuses it.
    precision: TrainPrecision = TrainPrecision::Fp32,
    /// Linear learning-rate warmup over this many iterations (0: none).
    warmup: u64 = 0,
    /// Biases at twice the learning rate and without weight decay (Caffe's `lr_mult: 2`,
    /// `decay_mult: 0`).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    caffe_bias: bool = true,
    /// Save a checkpoint every this many iterations (and at the end).
    save_every: u64 = 5_000,
    /// Report a log line every this many iterations (observers use it).
    log_every: u64 = 10,
    /// Name of the checkpoints (`<name>_<iteration>/`), the final model (`<name>.bpk`) and the
    /// loss files (a new run's default: the model's name).
    model_save_name: String = "ssd300".to_owned(),
    /// Output folder (`weights/`, `loss/`).
    results: PathBuf = PathBuf::from("results"),
    ;
    /// The folder of a COCO file's images, when they are not where the layout puts them.
    images: Option<PathBuf>,
    /// ImageNet backbone `.pth` to start from: torchvision's `vgg16` or amdegroot's
    /// `vgg16_reducedfc.pth` for the VGG networks, torchvision's `mobilenet_v3_large` for
    /// SSDLite (whose tail and width the network then takes).
    pretrained_model: Option<PathBuf>,
}

/// How the learning rate moves over a run (before the warmup ramp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `lr` times `gamma` for each `lr-decay` iteration passed (the paper's).
    #[default]
    Step,
    /// `lr * (1 + cos(pi * i / iterations)) / 2`: torchvision's `cosineannealinglr`, by
    /// iteration rather than by epoch.
    Cosine,
}

/// The float type a run trains in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum TrainPrecision {
    /// 32-bit floats.
    #[default]
    Fp32,
    /// 64-bit floats.
    Fp64,
}

impl TrainPrecision {
    /// The setting's value as a flag takes it (`fp32`, `fp64`).
    pub fn name(self) -> &'static str {
        match self {
            TrainPrecision::Fp32 => "fp32",
            TrainPrecision::Fp64 => "fp64",
        }
    }

    /// Burn's float type of this precision.
    pub fn dtype(self) -> burn::tensor::FloatDType {
        match self {
            TrainPrecision::Fp32 => burn::tensor::FloatDType::F32,
            TrainPrecision::Fp64 => burn::tensor::FloatDType::F64,
        }
    }
}

impl TrainConfig {
    /// The iterations of `ssd quickstart` unless asked otherwise.
    pub const QUICKSTART_ITERATIONS: u64 = 1000;

    /// `ssd quickstart`'s recipe for `iterations`: the small preset from scratch (batch norm),
    /// batch 16, SGD at lr 0.02 with the global gradient norm clipped to 5 (without the clip
    /// this lr diverges; the quickstart's gradient norms average 27 over its first 50 iterations
    /// and 8-10 until the first decay, then fall to ~2), warmup 100 (at most a fifth of the run),
    /// decays at 55% and 80%, no augmentation (in a few minutes of CPU training the plain images
    /// teach more than their augmented variants: VOC07 mAP 0.918 without after 1000
    /// iterations, 0.892 with after 900, on the quickstart's earlier 800-image dataset), two
    /// loading threads, four checkpoints, results in
    /// `results/quickstart`.
    pub fn quickstart(iterations: u64) -> Self {
        Self {
            batch_size: 16,
            iterations,
            lr: 0.02,
            clip_grad: 5.0,
            use_augment: false,
            expand_ratio: 1.0,
            lr_decay: vec![iterations * 11 / 20, iterations * 4 / 5],
            warmup: 100.min(iterations / 5),
            workers: 2,
            save_every: iterations.div_ceil(4).max(1),
            log_every: 50,
            model_save_name: "quickstart".to_owned(),
            results: PathBuf::from("results/quickstart"),
            ..Self::default()
        }
    }

    /// The default recipe of a model preset: the paper's VOC recipe ([`TrainConfig::default`]),
    /// and for `ssd300-coco` / `ssd512-coco` lufficc/SSD's COCO schedules
    /// (`vgg_ssd300_coco_trainval35k.yaml`: batch 32, 400k iterations, x0.1 at 280k and 360k;
    /// `vgg_ssd512_coco_trainval35k.yaml`: batch 24, 520k iterations, x0.1 at 360k and 480k;
    /// lr 1e-3 for both).
    ///
    /// `ssdlite320-coco` is torchvision's `references/detection` command for
    /// `ssdlite320_mobilenet_v3_large` (COCO AP 21.3) on one device: its global batch of 192
    /// (8 x 24), lr 0.15 on a cosine over 660 epochs of train2017's 117,266 annotated images
    /// (611 steps each: 403,260 iterations), weight decay 4e-5 on every parameter (no Caffe bias
    /// rule), a linear warmup over 1,000 iterations, and its "ssdlite" augmentation: IoU crop and
    /// flip, no photometric distortion, no zoom-out. `ssdlite320` (VOC) keeps lufficc/SSD's VOC
    /// schedule for its MobileNetV3 SSDLite320 (`mobilenet_v3_ssd320_voc0712.yaml`, VOC07 69.3:
    /// the paper's batch 32, lr 1e-3 and steps, weight decay 5e-4 on every parameter, warmup 500)
    /// with the same augmentation as torchvision's.
    ///
    /// `ssd300-resnet50-coco` is NVIDIA's SSD300 v1.1 recipe (DeepLearningExamples, COCO AP 0.25)
    /// on one device at their published batch of 64: lr 5.2e-3 (their rule, 2.6e-3 per 32 images),
    /// 65 epochs of the 117,266 annotated train2017 images (119,099 iterations) with x0.1 at
    /// epochs 43 and 54, warmup 300, weight decay 5e-4 on every parameter (no Caffe bias rule),
    /// and their augmentation: IoU crop, flip and colour jitter, no zoom-out. `ssd300-resnet50`
    /// (VOC) keeps the paper's VOC schedule with the same optimizer rules and augmentation.
    pub fn for_preset(model: &str) -> Self {
        let base = Self::default();
        let lite = Self {
            photometric: false,
            expand_ratio: 1.0,
            caffe_bias: false,
            ..Self::default()
        };
        match model {
            "ssdlite320" => Self {
                warmup: 500,
                ..lite
            },
            "ssdlite320-coco" => Self {
                batch_size: 192,
                iterations: 403_260,
                lr: 0.15,
                lr_schedule: LrSchedule::Cosine,
                weight_decay: 4e-5,
                warmup: 1_000,
                ..lite
            },
            "ssd300-resnet50-coco" => Self {
                batch_size: 64,
                iterations: 119_099,
                lr: 5.2e-3,
                lr_decay: vec![78_788, 98_943],
                warmup: 300,
                expand_ratio: 1.0,
                caffe_bias: false,
                ..base
            },
            "ssd300-resnet50" => Self {
                warmup: 300,
                expand_ratio: 1.0,
                caffe_bias: false,
                ..base
            },
            "ssd300-coco" => Self {
                batch_size: 32,
                iterations: 400_000,
                lr_decay: vec![280_000, 360_000],
                ..base
            },
            "ssd512-coco" => Self {
                batch_size: 24,
                iterations: 520_000,
                lr_decay: vec![360_000, 480_000],
                ..base
            },
            _ => base,
        }
    }
}

impl TrainConfig {
    /// Learning rate of iteration `i` (0-based) for the base group: the schedule's times the
    /// warmup ramp `(i + 1) / warmup`.
    pub fn lr_at(&self, i: u64) -> f64 {
        let warm = if self.warmup > 0 && i < self.warmup {
            (i + 1) as f64 / self.warmup as f64
        } else {
            1.0
        };
        let scheduled = match self.lr_schedule {
            LrSchedule::Step => {
                let decays = self.lr_decay.iter().filter(|&&s| i >= s).count();
                self.lr * self.gamma.powi(decays as i32)
            }
            LrSchedule::Cosine => {
                let progress = i.min(self.iterations) as f64 / self.iterations.max(1) as f64;
                self.lr * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
            }
        };
        scheduled * warm
    }

    /// Where checkpoints and the final model go: `<results>/weights`.
    pub fn weights_dir(&self) -> PathBuf {
        self.results.join("weights")
    }

    /// The checkpoint folder of iteration `iteration`.
    pub fn checkpoint_dir(&self, iteration: u64) -> PathBuf {
        self.weights_dir()
            .join(format!("{}_{iteration}", self.model_save_name))
    }

    /// The final model file, `<results>/weights/<name>.bpk`.
    pub fn final_model(&self) -> PathBuf {
        self.weights_dir()
            .join(format!("{}.bpk", self.model_save_name))
    }

    /// Checks every setting's range: one error naming the flag and the value.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.dataroot.is_empty() {
            return Err(TrainError::setting(
                "dataroot",
                "is required (one or more VOC or COCO roots, comma-separated)",
            ));
        }
        if self.batch_size == 0 {
            return Err(TrainError::setting("batch-size", "must be at least 1"));
        }
        if self.iterations == 0 {
            return Err(TrainError::setting("iterations", "must be at least 1"));
        }
        positive("lr", self.lr)?;
        positive("gamma", self.gamma)?;
        positive("alpha", self.alpha)?;
        positive("negpos-ratio", self.negpos_ratio)?;
        at_least_zero("weight-decay", self.weight_decay)?;
        at_least_zero("clip-grad", self.clip_grad)?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(TrainError::setting(
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            ));
        }
        if !(self.overlap_threshold > 0.0 && self.overlap_threshold <= 1.0) {
            return Err(TrainError::setting(
                "overlap-threshold",
                format!("must be in (0, 1], got {}", self.overlap_threshold),
            ));
        }
        if !(self.expand_ratio >= 1.0 && self.expand_ratio.is_finite()) {
            return Err(TrainError::setting(
                "expand-ratio",
                format!("must be a number >= 1, got {}", self.expand_ratio),
            ));
        }
        for (i, d) in self.devices.iter().enumerate() {
            if self.devices[..i].contains(d) {
                return Err(TrainError::setting(
                    "devices",
                    format!("{:?}: device {d} is listed twice", self.devices),
                ));
            }
        }
        check_shares(self.batch_size, self.devices.len().max(1), &self.devices)?;
        ssd_core::workers("workers", self.workers)?;
        if self.save_every == 0 {
            return Err(TrainError::setting("save-every", "must be at least 1"));
        }
        if self.log_every == 0 {
            return Err(TrainError::setting("log-every", "must be at least 1"));
        }
        check_name(&self.model_save_name)
    }
}

/// A batch of `batch_size` images splits into one equal share per device (`devices` as given,
/// for the message).
pub(crate) fn check_shares(
    batch_size: usize,
    shares: usize,
    devices: &[usize],
) -> Result<(), TrainError> {
    if batch_size.is_multiple_of(shares) {
        return Ok(());
    }
    Err(TrainError::setting(
        "devices",
        format!(
            "{devices:?}: the batch of {batch_size} images does not split into {shares} equal \
             shares; make --batch-size a multiple of the number of devices"
        ),
    ))
}

fn positive(name: &'static str, value: f64) -> Result<(), TrainError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::setting(
            name,
            format!("must be a positive number, got {value}"),
        ))
    }
}

fn at_least_zero(name: &'static str, value: f64) -> Result<(), TrainError> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::setting(
            name,
            format!("must be a number >= 0, got {value}"),
        ))
    }
}

/// A save name is one plain file name: not empty, no path separator, not hidden.
fn check_name(name: &str) -> Result<(), TrainError> {
    let plain = Path::new(name)
        .file_name()
        .is_some_and(|f| f.to_str() == Some(name));
    if name.is_empty() || name.starts_with('.') || !plain || name.contains(['/', '\\']) {
        return Err(TrainError::setting(
            "model-save-name",
            format!(
                "{name:?}: must be a plain file name (no folder, not empty, not starting with '.')"
            ),
        ));
    }
    Ok(())
}

/// Everything a [`Trainer`](crate::Trainer) needs: the recipe and the typed values.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// The recipe.
    pub config: TrainConfig,
    /// The network (with `num_classes` = the class list plus background).
    pub model: SsdConfig,
    /// Class names, background excluded.
    pub classes: ClassList,
    /// Where to train (autodiff is turned on by the trainer). The first device holds the model
    /// and the optimizer; with several, each takes an equal, contiguous share of every batch
    /// (data-parallel: their gradients are summed on the first, and the loss is divided by the
    /// positives of the whole batch, so K devices compute what one device does with the whole
    /// batch). The same device may be listed more than once.
    pub devices: Vec<Device>,
    /// A checkpoint folder to continue from (weights, momentum, iteration); its network must be
    /// `model`.
    pub resume: Option<PathBuf>,
    /// For a new run whose name already has checkpoints in the results folder: remove them (else
    /// the run is refused, so that the newest checkpoint always belongs to the newest run).
    pub overwrite: bool,
    /// The dataset of `config`, when it is already open with `classes` (the resolver opens it to
    /// learn its classes); `None`: the trainer opens it.
    pub dataset: Option<Arc<DetectionDataset>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_and_decays() {
        let config = TrainConfig {
            lr: 1e-3,
            lr_decay: vec![10, 20],
            warmup: 4,
            ..TrainConfig::default()
        };
        assert!((config.lr_at(0) - 0.25e-3).abs() < 1e-12);
        assert!((config.lr_at(3) - 1e-3).abs() < 1e-12);
        assert!((config.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((config.lr_at(10) - 1e-4).abs() < 1e-12);
        assert!((config.lr_at(25) - 1e-5).abs() < 1e-12);
    }

    #[test]
    fn cosine_schedule_falls_from_lr_to_zero() {
        let config = TrainConfig {
            lr: 0.15,
            lr_schedule: LrSchedule::Cosine,
            iterations: 100,
            warmup: 10,
            ..TrainConfig::default()
        };
        assert!((config.lr_at(0) - 0.15 * 0.1 * (1.0 + (0.0f64).cos()) / 2.0).abs() < 1e-12);
        assert!((config.lr_at(50) - 0.075).abs() < 1e-12);
        assert!(config.lr_at(99) < 1e-4 && config.lr_at(99) > 0.0);
        assert!(config.lr_at(100).abs() < 1e-12);
        // Monotone after the warmup.
        assert!((10..100).all(|i| config.lr_at(i + 1) <= config.lr_at(i)));
    }

    #[test]
    fn every_numeric_setting_is_range_checked() {
        let base = TrainConfig {
            dataroot: vec![PathBuf::from("VOC2007")],
            ..TrainConfig::default()
        };
        assert!(base.validate().is_ok());
        let cases: Vec<(&str, TrainConfig)> = vec![
            (
                "gamma",
                TrainConfig {
                    gamma: f64::NAN,
                    ..base.clone()
                },
            ),
            (
                "gamma",
                TrainConfig {
                    gamma: -10.0,
                    ..base.clone()
                },
            ),
            (
                "alpha",
                TrainConfig {
                    alpha: -5.0,
                    ..base.clone()
                },
            ),
            (
                "weight-decay",
                TrainConfig {
                    weight_decay: f64::INFINITY,
                    ..base.clone()
                },
            ),
            (
                "weight-decay",
                TrainConfig {
                    weight_decay: f64::NAN,
                    ..base.clone()
                },
            ),
            (
                "lr",
                TrainConfig {
                    lr: 0.0,
                    ..base.clone()
                },
            ),
            (
                "clip-grad",
                TrainConfig {
                    clip_grad: -1.0,
                    ..base.clone()
                },
            ),
            (
                "momentum",
                TrainConfig {
                    momentum: 1.0,
                    ..base.clone()
                },
            ),
            (
                "negpos-ratio",
                TrainConfig {
                    negpos_ratio: f64::NAN,
                    ..base.clone()
                },
            ),
            (
                "expand-ratio",
                TrainConfig {
                    expand_ratio: 0.5,
                    ..base.clone()
                },
            ),
            (
                "overlap-threshold",
                TrainConfig {
                    overlap_threshold: 1.5,
                    ..base.clone()
                },
            ),
            (
                "batch-size",
                TrainConfig {
                    batch_size: 0,
                    ..base.clone()
                },
            ),
            (
                "iterations",
                TrainConfig {
                    iterations: 0,
                    ..base.clone()
                },
            ),
            (
                "model-save-name",
                TrainConfig {
                    model_save_name: String::new(),
                    ..base.clone()
                },
            ),
            (
                "model-save-name",
                TrainConfig {
                    model_save_name: "../x".into(),
                    ..base.clone()
                },
            ),
            (
                "model-save-name",
                TrainConfig {
                    model_save_name: ".hidden".into(),
                    ..base.clone()
                },
            ),
            (
                "devices",
                TrainConfig {
                    devices: vec![0, 0],
                    ..base.clone()
                },
            ),
            (
                "devices",
                TrainConfig {
                    devices: vec![0, 1, 2],
                    batch_size: 32,
                    ..base.clone()
                },
            ),
        ];
        for (flag, config) in cases {
            match config.validate() {
                Err(TrainError::Setting { name, .. }) => assert_eq!(name, flag),
                other => panic!("{flag}: expected a setting error, got {other:?}"),
            }
        }
    }
}
