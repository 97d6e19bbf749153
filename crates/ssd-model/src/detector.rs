//! A trained detector: weights of any supported format loaded with what is needed to use them
//! (configuration, class names, preprocessing, post-processing), turning images into detections
//! in the original images' pixels.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use serde::Serialize;
use ssd_data::{Augment, ClassList};

use crate::checkpoint::{CheckpointInfo, check_classes, model_file};
use crate::engine::Engine;
use crate::{
    Detection, LoadMode, ModelError, PostProcessConfig, PostProcessor, Ssd, SsdConfig, pth_entries,
};

/// An SSD ready to detect: the network on a device, its configuration and class names, and the
/// post-processing thresholds.
///
/// ```no_run
/// use ssd_model::Detector;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = burn::tensor::Device::default();
/// let detector = Detector::load("results/weights/ssd300.bpk", &device)?;
/// let image = ssd_data::load_rgb("dog.jpg".as_ref())?;
/// for d in &detector.detect(&[image])?[0] {
///     println!("{} {:.2} {:?}", detector.class_name(d.label), d.score, d.bbox);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Detector {
    network: Network,
    config: SsdConfig,
    classes: ClassList,
    processor: PostProcessor,
    transform: Augment,
    device: Device,
    source: PathBuf,
}

/// What runs the network: Burn's module on a device, or an ONNX Runtime session.
#[derive(Debug)]
enum Network {
    Burn(Box<Ssd>),
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(crate::onnxruntime::OrtNetwork),
}

/// The detections of one image in a serialisable form (the JSON lines of `ssd detect`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageDetections {
    /// The image's name (usually its path).
    pub image: String,
    /// Width of the image in pixels.
    pub width: u32,
    /// Height of the image in pixels.
    pub height: u32,
    /// Best first.
    pub detections: Vec<NamedDetection>,
}

/// A detection with its class name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedDetection {
    /// Class name.
    pub class: String,
    /// 1-based class label.
    pub label: usize,
    /// Softmax probability.
    pub score: f32,
    /// `[xmin, ymin, xmax, ymax]`, 0-based pixels of the original image.
    pub bbox: [f32; 4],
}

impl Detector {
    /// Loads a trained model on `device`: a native checkpoint (a `.bpk` or a checkpoint folder
    /// written by `ssd train`, configuration and class names read from it) or a PyTorch `.pth`
    /// in the amdegroot, torchvision, lufficc or NVIDIA layout (configuration derived from its keys and
    /// shapes; the 20 VOC classes when it has 21 outputs, else see
    /// [`Detector::load_with_classes`]). Post-processing: the paper's test settings.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self, ModelError> {
        Self::load_with_classes(path, None, device)
    }

    /// [`Detector::load`], with the class names given (they must match the model's outputs).
    pub fn load_with_classes(
        path: impl AsRef<Path>,
        classes: Option<ClassList>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::load_on(path, classes, device, &Engine::Burn)
    }

    /// [`Detector::load_with_classes`] with the network run by `engine`. With
    /// [`Engine::OnnxRuntime`], `path` may also be an `.onnx` file `ssd export` wrote
    /// (configuration, classes and category ids from its metadata); any other weights file is
    /// loaded on `device` and exported to ONNX in memory (what `ssd export` writes; for SSD300,
    /// about a second and the weights' size in memory while the session is built). `device` then
    /// runs only the post-processing.
    pub fn load_on(
        path: impl AsRef<Path>,
        classes: Option<ClassList>,
        device: &Device,
        engine: &Engine,
    ) -> Result<Self, ModelError> {
        let file = model_file(path.as_ref());
        let is_onnx = file.extension().and_then(|e| e.to_str()) == Some("onnx");
        match engine {
            Engine::Burn if is_onnx => Err(ModelError::Weights {
                path: file,
                message: "an ONNX file runs with the onnxruntime engine (--engine onnxruntime)"
                    .into(),
            }),
            Engine::Burn => Self::load_burn(file, classes, device),
            #[cfg(feature = "onnxruntime")]
            Engine::OnnxRuntime(options) => {
                if !file.exists() {
                    return Err(ModelError::Checkpoint {
                        path: file,
                        problem: crate::error::CheckpointProblem::NotFound,
                    });
                }
                if is_onnx {
                    let (network, config, classes) =
                        crate::onnxruntime::open_onnx_file(&file, classes, options)?;
                    let mut detector =
                        Self::with_network(Network::OnnxRuntime(network), config, classes)?;
                    detector.device = device.clone();
                    detector.source = file;
                    Ok(detector)
                } else {
                    Self::load_burn(file, classes, device)?.into_engine(engine)
                }
            }
            #[cfg(not(feature = "onnxruntime"))]
            Engine::OnnxRuntime(_) => Err(ModelError::Engine(
                "this build has no ONNX Runtime engine (cargo feature `onnxruntime` of ssd-model)"
                    .into(),
            )),
        }
    }

    /// The same detector with its network run by `engine`: for [`Engine::OnnxRuntime`], the
    /// network exported to ONNX in memory and handed to a session (the Burn network is dropped;
    /// the device then runs only the post-processing). A detector already on `engine` (or on
    /// ONNX Runtime, for [`Engine::Burn`]: its weights are no longer here) is returned as is
    /// for the first, an error for the second.
    pub fn into_engine(self, engine: &Engine) -> Result<Self, ModelError> {
        match (engine, &self.network) {
            (Engine::Burn, Network::Burn(_)) => Ok(self),
            #[cfg(feature = "onnxruntime")]
            (Engine::Burn, Network::OnnxRuntime(_)) => Err(ModelError::Engine(
                "an ONNX Runtime detector cannot move to Burn: load its weights file".into(),
            )),
            #[cfg(feature = "onnxruntime")]
            (Engine::OnnxRuntime(options), Network::Burn(_)) => {
                let bytes = crate::onnx::to_onnx(&self, &crate::onnx::OnnxOptions::default())
                    .map_err(|e| ModelError::Weights {
                        path: self.source.clone(),
                        message: format!("exporting to ONNX: {e}"),
                    })?;
                let network = crate::onnxruntime::OrtNetwork::new(&bytes, &self.source, options)?;
                let post = *self.post_process();
                let mut detector =
                    Self::with_network(Network::OnnxRuntime(network), self.config, self.classes)?
                        .with_post_process(post);
                detector.device = self.device;
                detector.source = self.source;
                Ok(detector)
            }
            #[cfg(feature = "onnxruntime")]
            (Engine::OnnxRuntime(_), Network::OnnxRuntime(_)) => Ok(self),
            #[cfg(not(feature = "onnxruntime"))]
            (Engine::OnnxRuntime(_), _) => Err(ModelError::Engine(
                "this build has no ONNX Runtime engine (cargo feature `onnxruntime` of ssd-model)"
                    .into(),
            )),
        }
    }

    fn load_burn(
        file: PathBuf,
        classes: Option<ClassList>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if !file.exists() {
            return Err(ModelError::Checkpoint {
                path: file,
                problem: crate::error::CheckpointProblem::NotFound,
            });
        }
        let is_pth = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt")
        );
        let (model, config, classes) = if is_pth {
            let config = SsdConfig::from_state_dict(&pth_entries(&file)?).map_err(|source| {
                ModelError::StateDict {
                    path: file.clone(),
                    source,
                }
            })?;
            return Self::load_pytorch_as(file, config, classes, device);
        } else {
            let info = CheckpointInfo::read(&file)?;
            let classes = classes.unwrap_or(info.classes);
            check_classes(&file, &info.config, &classes)?;
            let model = info.config.init(device)?.load_checkpoint(&file)?;
            (model, info.config, classes)
        };
        let mut detector = Self::new(model, config, classes)?;
        detector.device = device.clone();
        detector.source = file;
        Ok(detector)
    }

    /// A PyTorch `.pth` loaded into the network `config` describes, for a state dict whose keys
    /// do not say which network it holds (one in ssd's own names,
    /// [`PthLayout::Native`](crate::PthLayout::Native), or SSD300-like keys of another
    /// network): any layout [`Ssd::load_pytorch`] reads, every parameter from the file. The
    /// classes: `classes`, else VOC's 20 for 21 outputs, lufficc's COCO 80 for 81, torchvision's
    /// COCO ids for 91; they must match the outputs.
    pub fn load_pytorch_as(
        path: impl AsRef<Path>,
        config: SsdConfig,
        classes: Option<ClassList>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let file = path.as_ref().to_owned();
        let classes = match classes {
            Some(c) => c,
            None if config.num_classes == 21 => ClassList::voc(),
            // lufficc/SSD's COCO models: the 80 categories in id order.
            None if config.num_classes == 81 => ClassList::coco(),
            // torchvision's COCO models: outputs indexed by category id, unused ids included.
            None if config.num_classes == 91 => ssd_data::ClassList::coco_by_id(),
            None => {
                return Err(ModelError::ClassCount {
                    path: file,
                    num_classes: config.num_classes,
                    names: 20,
                });
            }
        };
        check_classes(&file, &config, &classes)?;
        let (model, _report) = config.init(device)?.load_pytorch(&file, LoadMode::Full)?;
        let mut detector = Self::new(model, config, classes)?;
        detector.device = device.clone();
        detector.source = file;
        Ok(detector)
    }

    /// A detector over a model in memory (its device is the one `model` lives on; for an
    /// autodiff model, detection runs without recording gradients).
    pub fn new(model: Ssd, config: SsdConfig, classes: ClassList) -> Result<Self, ModelError> {
        use burn::module::Module;
        let model = model.valid();
        let device = model
            .devices()
            .into_iter()
            .next()
            .map(Device::without_autodiff)
            .unwrap_or_default();
        let mut detector = Self::with_network(Network::Burn(Box::new(model)), config, classes)?;
        detector.device = device;
        Ok(detector)
    }

    fn with_network(
        network: Network,
        config: SsdConfig,
        classes: ClassList,
    ) -> Result<Self, ModelError> {
        check_classes(Path::new("the model"), &config, &classes)?;
        let priors = config.priors.priors().map_err(crate::ConfigError::Priors)?;
        Ok(Self {
            processor: PostProcessor::new(priors, config.test_post_process())
                .with_clip_before_nms(config.clips_before_nms()),
            transform: Augment::eval(config.input_size() as u32)
                .normalized(config.mean_rgb, config.std_rgb),
            network,
            config,
            classes,
            device: Device::default(),
            source: PathBuf::new(),
        })
    }

    /// The same detector with other post-processing thresholds.
    pub fn with_post_process(mut self, post: PostProcessConfig) -> Self {
        self.set_post_process(post);
        self
    }

    /// Changes the post-processing thresholds.
    pub fn set_post_process(&mut self, post: PostProcessConfig) {
        self.processor.set_config(post);
    }

    /// The post-processing thresholds.
    pub fn post_process(&self) -> &PostProcessConfig {
        self.processor.config()
    }

    /// Detections for each image (any size, RGB), in its pixels: resized to the network's input
    /// and the mean subtracted, all images in one batch, one device-to-host transfer.
    pub fn detect(&self, images: &[RgbImage]) -> Result<Vec<Vec<Detection>>, ModelError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let side = self.config.input_size();
        let mut pixels = Vec::with_capacity(images.len() * 3 * side * side);
        for image in images {
            pixels.extend(self.preprocess(image));
        }
        let sizes: Vec<[u32; 2]> = images.iter().map(|i| [i.width(), i.height()]).collect();
        let configs = vec![*self.post_process(); images.len()];
        self.detect_preprocessed(pixels, &sizes, &configs)
    }

    /// Detections for images already preprocessed: `pixels` holds the [`Detector::preprocess`]
    /// inputs of `sizes.len()` images back to back (`sizes`: their original widths and heights),
    /// run as one batch; image `i` is post-processed with `configs[i]`. What a server batching
    /// requests runs: image `i` gets the detections [`Detector::detect`] gives it alone with the
    /// thresholds `configs[i]`.
    pub fn detect_preprocessed(
        &self,
        pixels: Vec<f32>,
        sizes: &[[u32; 2]],
        configs: &[PostProcessConfig],
    ) -> Result<Vec<Vec<Detection>>, ModelError> {
        if sizes.is_empty() {
            return Ok(Vec::new());
        }
        let side = self.config.input_size();
        if pixels.len() != sizes.len() * 3 * side * side {
            return Err(ModelError::Input(format!(
                "{} preprocessed values for {} images of 3x{side}x{side}",
                pixels.len(),
                sizes.len()
            )));
        }
        let (loc, conf) = match &self.network {
            Network::Burn(model) => model.forward(Tensor::<4>::from_data(
                TensorData::new(pixels, [sizes.len(), 3, side, side]),
                &self.device,
            )),
            #[cfg(feature = "onnxruntime")]
            Network::OnnxRuntime(session) => {
                let [(loc, loc_shape), (conf, conf_shape)] =
                    session.forward(pixels, sizes.len(), side)?;
                (
                    Tensor::from_data(TensorData::new(loc, loc_shape), &self.device),
                    Tensor::from_data(TensorData::new(conf, conf_shape), &self.device),
                )
            }
        };
        self.processor.detect_each(loc, conf, sizes, configs)
    }

    /// Detections for a batch already preprocessed (`[N, 3, S, S]`, RGB minus the mean, as
    /// [`Detector::preprocess`] or `ssd-data`'s evaluation items make it); `original_sizes` are
    /// the images' widths and heights in pixels.
    pub fn detect_tensor(
        &self,
        images: Tensor<4>,
        original_sizes: &[[u32; 2]],
    ) -> Result<Vec<Vec<Detection>>, ModelError> {
        match &self.network {
            Network::Burn(model) => {
                let (loc, conf) = model.forward(images);
                self.processor.detect(loc, conf, original_sizes)
            }
            #[cfg(feature = "onnxruntime")]
            Network::OnnxRuntime(_) => {
                let pixels = images
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| ModelError::Device(format!("{e:?}")))?;
                let configs = vec![*self.post_process(); original_sizes.len()];
                self.detect_preprocessed(pixels, original_sizes, &configs)
            }
        }
    }

    /// The network input of one image: `[3, S, S]` planes, RGB minus the mean.
    pub fn preprocess(&self, image: &RgbImage) -> Vec<f32> {
        self.transform.resize(image)
    }

    /// The transform of [`Detector::preprocess`], to run where the detector is not (a server's
    /// request threads): `preprocessor().resize(image)` is `preprocess(image)`.
    pub fn preprocessor(&self) -> &Augment {
        &self.transform
    }

    /// The detections of one image with class names, ready to serialise.
    pub fn describe(
        &self,
        image: &str,
        size: [u32; 2],
        detections: &[Detection],
    ) -> ImageDetections {
        ImageDetections {
            image: image.to_owned(),
            width: size[0],
            height: size[1],
            detections: detections
                .iter()
                .map(|d| NamedDetection {
                    class: self.class_name(d.label).to_owned(),
                    label: d.label,
                    score: d.score,
                    bbox: d.bbox,
                })
                .collect(),
        }
    }

    /// The name of 1-based class `label` (`"?"` outside the list).
    pub fn class_name(&self, label: usize) -> &str {
        self.classes.name(label).unwrap_or("?")
    }

    /// The Burn network (`None` when ONNX Runtime runs it).
    pub fn model(&self) -> Option<&Ssd> {
        match &self.network {
            Network::Burn(model) => Some(model),
            #[cfg(feature = "onnxruntime")]
            Network::OnnxRuntime(_) => None,
        }
    }

    /// What runs the network: `"burn"`, or ONNX Runtime with its execution provider and
    /// precision (`"onnxruntime cpu fp32"`).
    pub fn engine(&self) -> String {
        match &self.network {
            Network::Burn(_) => "burn".to_owned(),
            #[cfg(feature = "onnxruntime")]
            Network::OnnxRuntime(session) => session.description.clone(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &SsdConfig {
        &self.config
    }

    /// Its class names (label `l` is `classes().name(l)`).
    pub fn classes(&self) -> &ClassList {
        &self.classes
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights file it was loaded from (empty for [`Detector::new`]).
    pub fn source(&self) -> &Path {
        &self.source
    }
}
