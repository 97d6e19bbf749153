//! The evaluation room: a dataset of either format and a model's detections (from a
//! [`Detector`], or from any tool's results files) become results files and a report, with any
//! metric. This is the one place that knows what a format implies for evaluation: its default
//! metric ([`MetricChoice`]), its results files (devkit files for VOC, one COCO results file),
//! its test settings ([`test_post_process`]) and how its ground truth is scored (exactly as the
//! files give it). Above `ssd-model` and `ssd-eval` (the metrics, which know no format), below
//! the training engine, the server and the command line, which name no format.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ssd_data::{DataLocation, DetectionDataset};
//! use ssd_evaluation::{EvalOptions, MetricChoice, detect_dataset, test_post_process};
//! use ssd_model::Detector;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = burn::tensor::Device::default();
//! let detector = Detector::load("results/weights/ssd300.bpk", &device)?;
//! let location = DataLocation::new(&["VOCdevkit/VOC2007".into()], "test");
//! let dataset = Arc::new(DetectionDataset::open_at(&location, Some(detector.classes().clone()), true)?);
//! // The paper's test settings (COCO keeps 100 detections per image).
//! let post = test_post_process(dataset.format(), *detector.post_process());
//! let detector = detector.with_post_process(post);
//! let found = detect_dataset(&detector, &dataset, &EvalOptions::default(), |_| {})?;
//! found.write_results(None, true, &[])?;
//! let report = found.evaluate(&MetricChoice::default().metric(dataset.format()))?;
//! println!("{}", report.table());
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use ssd_data::{BatchPlan, DatasetFormat, DetectionDataset, Prefetcher, SsdBatcher, SsdDataset};
use ssd_eval::{
    ApMetric, CocoDetection, CocoEvaluator, CocoImage, CocoObject, Detection, EvalConfig,
    GroundTruthObject, PixelBox, VocEvaluator, devkit_box,
};
pub use ssd_eval::{IouRule, Metric, MissingClass, Report};
use ssd_model::{Detector, PostProcessConfig};

mod error;

pub use error::EvaluationError;

/// A metric by the name a user gives it (`--metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MetricName {
    /// VOC07 11-point AP at one IoU threshold (the SSD paper's VOC number).
    Voc07,
    /// VOC2010+ area AP.
    Area,
    /// COCO's AP at IoU 0.50:0.95 and the other 11 numbers, as pycocotools.
    Coco,
}

/// The metric a user asks for, or the dataset format's own: VOC07 for VOC data, COCO's for COCO
/// data. The IoU settings apply to the VOC metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricChoice {
    /// The metric asked for (`None`: the format's own).
    pub name: Option<MetricName>,
    /// VOC metrics: IoU a detection needs to match a ground truth, in (0, 1].
    pub iou_threshold: f64,
    /// VOC metrics: `>=` (the devkit's) or `>` (py-faster-rcnn's).
    pub iou_rule: IouRule,
}

impl Default for MetricChoice {
    /// The format's own metric; the devkit's IoU `>= 0.5` for VOC metrics.
    fn default() -> Self {
        let voc = EvalConfig::default();
        Self {
            name: None,
            iou_threshold: voc.iou_threshold,
            iou_rule: voc.rule,
        }
    }
}

impl MetricChoice {
    /// The metric for a dataset of `format`.
    pub fn metric(&self, format: DatasetFormat) -> Metric {
        let voc = |metric| {
            Metric::Voc(EvalConfig {
                metric,
                iou_threshold: self.iou_threshold,
                rule: self.iou_rule,
            })
        };
        match self.name.unwrap_or(match format {
            DatasetFormat::Voc => MetricName::Voc07,
            DatasetFormat::Coco => MetricName::Coco,
        }) {
            MetricName::Voc07 => voc(ApMetric::Voc07),
            MetricName::Area => voc(ApMetric::Area),
            MetricName::Coco => Metric::Coco,
        }
    }

    /// Checks the IoU threshold (named like the flag, `iou-threshold`).
    pub fn validate(&self) -> Result<(), EvaluationError> {
        EvalConfig {
            metric: ApMetric::Voc07,
            iou_threshold: self.iou_threshold,
            rule: self.iou_rule,
        }
        .validate()
        .map_err(|e| EvaluationError::Setting(e.named("iou-threshold")))
    }
}

/// How to run the detection pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Loading threads.
    pub workers: usize,
}

impl EvalOptions {
    /// Checks the ranges: `batch-size` at least 1, `workers` in `1..=256` (named like the flags of
    /// `ssd eval`).
    pub fn validate(&self) -> Result<(), EvaluationError> {
        ssd_core::at_least_one("batch-size", self.batch_size)?;
        Ok(ssd_core::workers("workers", self.workers)?)
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            batch_size: 8,
            workers: 2,
        }
    }
}

/// One detection of a [`DatasetDetections`], with its box in both conventions, each exactly as
/// its source gave it: the devkit's 1-based pixels and COCO's `[x, y, w, h]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredBox {
    /// 1-based class label of the dataset's class list.
    pub label: usize,
    /// Confidence.
    pub score: f64,
    /// The devkit's box (1-based pixels).
    pub devkit: PixelBox,
    /// COCO's `[x, y, w, h]` (0-based pixels).
    pub xywh: [f64; 4],
}

impl ScoredBox {
    /// A detection of the network: a corner box in 0-based continuous pixels.
    pub fn from_corners(label: usize, score: f64, corners: [f32; 4]) -> Self {
        let [x0, y0, x1, y1] = corners.map(f64::from);
        Self {
            label,
            score,
            devkit: devkit_box(corners),
            xywh: [x0, y0, x1 - x0, y1 - y0],
        }
    }

    /// A line of a devkit results file.
    pub fn from_devkit(label: usize, score: f64, devkit: PixelBox) -> Self {
        let [x0, y0, x1, y1] = devkit;
        Self {
            label,
            score,
            devkit,
            xywh: [x0 - 1.0, y0 - 1.0, x1 - x0, y1 - y0],
        }
    }

    /// An entry of a COCO results file.
    pub fn from_xywh(label: usize, score: f64, xywh: [f64; 4]) -> Self {
        let [x, y, w, h] = xywh;
        Self {
            label,
            score,
            devkit: [x + 1.0, y + 1.0, x + w + 1.0, y + h + 1.0],
            xywh,
        }
    }
}

/// The detections of a dataset's images (from a detector, or from results files of either
/// format), ready for any [`Metric`].
#[derive(Debug, Clone)]
pub struct DatasetDetections {
    dataset: Arc<DetectionDataset>,
    detections: Vec<Vec<ScoredBox>>,
    /// COCO image id -> index.
    coco_index: std::collections::HashMap<u64, usize>,
}

impl DatasetDetections {
    /// No detections yet for `dataset`'s images.
    pub fn new(dataset: Arc<DetectionDataset>) -> Self {
        let coco_index = (0..dataset.len())
            .map(|i| (coco_image_id(&dataset, i), i))
            .collect();
        Self {
            detections: vec![Vec::new(); dataset.len()],
            dataset,
            coco_index,
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<DetectionDataset> {
        &self.dataset
    }

    /// Adds detections to image `index`.
    pub fn add(&mut self, index: usize, boxes: &[ScoredBox]) {
        if let Some(slot) = self.detections.get_mut(index) {
            slot.extend_from_slice(boxes);
        }
    }

    /// Image `index`'s detections.
    pub fn image(&self, index: usize) -> &[ScoredBox] {
        self.detections.get(index).map_or(&[], Vec::as_slice)
    }

    /// Number of detections in all.
    pub fn num_detections(&self) -> usize {
        self.detections.iter().map(Vec::len).sum()
    }

    /// The VOC evaluator: the dataset's ground truth (crowd regions as difficult: ignored) and
    /// the detections. An image id listed twice is an error (its objects would count twice).
    pub fn voc_evaluator(&self) -> Result<VocEvaluator, EvaluationError> {
        let mut evaluator = voc_ground_truth(&self.dataset)?;
        for (i, dets) in self.detections.iter().enumerate() {
            let dets: Vec<Detection> = dets
                .iter()
                .map(|d| Detection {
                    label: d.label,
                    score: d.score,
                    bbox: d.devkit,
                })
                .collect();
            evaluator.add(self.dataset.image_id(i), &dets)?;
        }
        Ok(evaluator)
    }

    /// The COCO evaluator: the dataset's categories and ground truth exactly as its files give
    /// it (every object, boxes unclipped, those training leaves out included; VOC difficult
    /// objects as crowd regions: ignored) and the detections of classes that have a category in
    /// the dataset (a model's class the file lacks has none: its detections are left out).
    pub fn coco_evaluator(&self) -> Result<CocoEvaluator, EvaluationError> {
        let d = &self.dataset;
        let images = (0..d.len())
            .map(|i| {
                let a = d.annotation(i);
                let objects = a
                    .ground_truth()
                    .filter_map(|o| {
                        Some(CocoObject {
                            category_id: d.category_of_label(o.label)?,
                            bbox: o.xywh(),
                            area: o.coco_area(),
                            crowd: o.crowd || o.difficult,
                        })
                    })
                    .collect();
                let image = CocoImage {
                    id: coco_image_id(d, i),
                    width: a.width,
                    height: a.height,
                };
                (image, objects)
            })
            .collect();
        let mut evaluator = CocoEvaluator::new(d.categories().to_vec(), images)?;
        evaluator.add(&self.coco_results())?;
        Ok(evaluator)
    }

    /// The detections in COCO's results form, image by image, with the dataset's own category
    /// ids (detections of a class without one are left out).
    pub fn coco_results(&self) -> Vec<CocoDetection> {
        let d = &self.dataset;
        self.detections
            .iter()
            .enumerate()
            .flat_map(|(i, dets)| {
                let image_id = coco_image_id(d, i);
                dets.iter().filter_map(move |b| {
                    Some(CocoDetection {
                        image_id,
                        category_id: d.category_of_label(b.label)?,
                        bbox: b.xywh,
                        score: b.score,
                    })
                })
            })
            .collect()
    }

    /// Writes the detections in the dataset's own results format and returns where (see
    /// [`results_destination`], which refuses what may not be written before anything is). Each
    /// file is written whole or not at all.
    pub fn write_results(
        &self,
        to: Option<&Path>,
        overwrite: bool,
        inputs: &[&Path],
    ) -> Result<PathBuf, EvaluationError> {
        let d = &self.dataset;
        let target = results_destination(d, to, overwrite, inputs)?;
        match d.format() {
            DatasetFormat::Voc => {
                ssd_eval::write_results(&self.voc_evaluator()?, &target, "comp4", d.name())?;
            }
            DatasetFormat::Coco => ssd_eval::write_coco_results(&target, &self.coco_results())?,
        }
        Ok(target)
    }

    /// Evaluates the detections with `metric`.
    pub fn evaluate(&self, metric: &Metric) -> Result<Report, EvaluationError> {
        Ok(match metric {
            Metric::Voc(config) => Report::Voc(self.voc_evaluator()?.evaluate(config)?),
            Metric::Coco => Report::Coco(self.coco_evaluator()?.evaluate()?),
        })
    }

    /// Reads any tool's results for `dataset`, in its format's results files: a folder of devkit
    /// files for VOC data ([`DatasetDetections::read_voc_results`], where `missing` applies), one
    /// COCO results file for COCO data ([`DatasetDetections::read_coco_results`]). Returns the
    /// detections and how many were read.
    pub fn read_results(
        dataset: Arc<DetectionDataset>,
        path: &Path,
        missing: MissingClass,
    ) -> Result<(Self, usize), EvaluationError> {
        match dataset.format() {
            DatasetFormat::Voc => Self::read_voc_results(dataset, path, missing),
            DatasetFormat::Coco => Self::read_coco_results(dataset, path),
        }
    }

    /// Reads devkit results files `<comp>_det_<set>_<class>.txt` from `folder` (see
    /// [`ssd_eval::read_results`]); returns the detections and how many lines were read.
    pub fn read_voc_results(
        dataset: Arc<DetectionDataset>,
        folder: &Path,
        missing: MissingClass,
    ) -> Result<(Self, usize), EvaluationError> {
        let mut evaluator = voc_ground_truth(&dataset)?;
        let count = ssd_eval::read_results(&mut evaluator, folder, dataset.name(), missing)
            .map_err(|e| EvaluationError::Results {
                path: folder.to_owned(),
                source: e,
            })?;
        let mut out = Self::new(dataset);
        let index: std::collections::HashMap<String, usize> = (0..out.dataset.len())
            .map(|i| (out.dataset.image_id(i).to_owned(), i))
            .collect();
        for label in 1..=out.dataset.classes().len() {
            for (id, score, b) in evaluator.class_detections(label) {
                if let Some(&i) = index.get(id) {
                    out.detections[i].push(ScoredBox::from_devkit(label, score, b));
                }
            }
        }
        Ok((out, count))
    }

    /// Reads a COCO results file (`[{"image_id", "category_id", "bbox", "score"}]`, as any tool
    /// writes it). An image or category the dataset lacks is an error naming the entry.
    pub fn read_coco_results(
        dataset: Arc<DetectionDataset>,
        file: &Path,
    ) -> Result<(Self, usize), EvaluationError> {
        let entries = ssd_eval::read_coco_results(file)?;
        let mut out = Self::new(dataset);
        let labels: std::collections::HashMap<u64, usize> = (1..=out.dataset.classes().len())
            .filter_map(|l| Some((out.dataset.category_of_label(l)?, l)))
            .collect();
        for (n, e) in entries.iter().enumerate() {
            let bad = |json_path: String, message: String| ssd_eval::EvalError::BadCocoResults {
                path: file.to_owned(),
                json_path,
                message,
            };
            let Some(&i) = out.coco_index.get(&e.image_id) else {
                return Err(bad(
                    format!("[{n}].image_id"),
                    format!("image {} is not in the dataset", e.image_id),
                )
                .into());
            };
            let Some(&label) = labels.get(&e.category_id) else {
                return Err(bad(
                    format!("[{n}].category_id"),
                    format!("category {} is not in the dataset", e.category_id),
                )
                .into());
            };
            if !e.score.is_finite() || !e.bbox.iter().all(|v| v.is_finite()) {
                return Err(
                    bad(format!("[{n}]"), "a score or box that is not finite".into()).into(),
                );
            }
            out.detections[i].push(ScoredBox::from_xywh(label, e.score, e.bbox));
        }
        Ok((out, entries.len()))
    }
}

/// Where the results of `dataset` go, in its own results format: devkit files
/// `comp4_det_<set>_<class>.txt` in a folder (VOC; default `results/det`), or one COCO results
/// file (default `results/det/detections_<set>.json`). Checked before a detection pass, so that
/// nothing runs for an output that would be refused: a file that exists is refused unless
/// `overwrite`, and whatever `overwrite` says, so is anything but a regular file and any input
/// of the evaluation (the dataset's annotation and image files, and `inputs`: the model).
pub fn results_destination(
    dataset: &DetectionDataset,
    to: Option<&Path>,
    overwrite: bool,
    inputs: &[&Path],
) -> Result<PathBuf, EvaluationError> {
    let d = dataset;
    let default = || results_in(d, Path::new("results/det"));
    let (target, files) = match d.format() {
        DatasetFormat::Voc => {
            let folder = to.map_or_else(default, Path::to_owned);
            let files = d
                .classes()
                .names()
                .iter()
                .map(|c| folder.join(ssd_eval::results_file_name("comp4", d.name(), c)))
                .collect();
            (folder, files)
        }
        DatasetFormat::Coco => {
            let file = to.map_or_else(default, Path::to_owned);
            (file.clone(), vec![file])
        }
    };
    for file in &files {
        let dataset_files = (0..d.len()).flat_map(|i| {
            let e = d.image_entry(i);
            [e.annotation_file.as_path(), e.path.as_path()]
        });
        ssd_data::output::check_output(
            file,
            overwrite,
            inputs.iter().copied().chain(dataset_files),
        )?;
    }
    Ok(target)
}

/// Where `dataset`'s results go in `folder`, in its format's results files: the folder itself for
/// devkit files (VOC), `detections_<set>.json` in it for COCO.
pub fn results_in(dataset: &DetectionDataset, folder: &Path) -> PathBuf {
    match dataset.format() {
        DatasetFormat::Voc => folder.to_owned(),
        DatasetFormat::Coco => folder.join(format!("detections_{}.json", dataset.name())),
    }
}

/// The test settings for a dataset of `format`: `base` (the paper's: score 0.01, top 400 per
/// class, NMS 0.45, 200 per image), with 100 detections per image for COCO (what its metric
/// counts, and what lufficc/SSD keeps).
pub fn test_post_process(format: DatasetFormat, base: PostProcessConfig) -> PostProcessConfig {
    match format {
        DatasetFormat::Voc => base,
        DatasetFormat::Coco => PostProcessConfig { top_k: 100, ..base },
    }
}

/// Image `index`'s COCO id: the file's own, or for VOC its position plus one.
fn coco_image_id(dataset: &DetectionDataset, index: usize) -> u64 {
    dataset
        .image_entry(index)
        .coco_id
        .unwrap_or(index as u64 + 1)
}

/// A VOC evaluator holding `dataset`'s ground truth exactly as its files give it (class list,
/// every object with its unclipped box in the devkit's pixels, as `VOCevaldet.m` reads it;
/// difficult flags, crowd regions as difficult) and no detections yet.
pub fn voc_ground_truth(dataset: &DetectionDataset) -> Result<VocEvaluator, EvaluationError> {
    let images = (0..dataset.len())
        .map(|i| {
            let objects = dataset
                .annotation(i)
                .ground_truth()
                .map(|o| GroundTruthObject {
                    label: o.label,
                    bbox: o.given.devkit(),
                    difficult: o.difficult || o.crowd,
                })
                .collect();
            (dataset.image_id(i).to_owned(), objects)
        })
        .collect();
    Ok(VocEvaluator::new(
        dataset.classes().names().to_vec(),
        images,
    )?)
}

/// Runs `detector` over every image of `dataset` (with its post-processing settings) and returns
/// the detections. `progress` is called with the number of images done after each batch.
/// Options or post-processing thresholds out of range are an error before anything runs.
pub fn detect_dataset(
    detector: &Detector,
    dataset: &Arc<DetectionDataset>,
    options: &EvalOptions,
    mut progress: impl FnMut(usize),
) -> Result<DatasetDetections, EvaluationError> {
    options.validate()?;
    detector
        .post_process()
        .validate()
        .map_err(ssd_model::ModelError::from)?;
    let items = SsdDataset::eval(Arc::clone(dataset), detector.preprocessor().clone());
    let plan = BatchPlan {
        len: dataset.len(),
        batch_size: options.batch_size,
        shuffle: None,
        keep_partial: true,
    };
    let batches = plan.batches_per_epoch();
    let mut out = DatasetDetections::new(Arc::clone(dataset));
    let mut done = 0;
    for next in Prefetcher::new(items, plan, 0, batches, options.workers) {
        let (_, _, items) = next?;
        let batch = SsdBatcher.batch(items, detector.device());
        let found = detector.detect_tensor(batch.images, &batch.original_sizes)?;
        for (index, dets) in batch.indices.iter().zip(found) {
            let boxes: Vec<ScoredBox> = dets
                .iter()
                .map(|d| ScoredBox::from_corners(d.label, f64::from(d.score), d.bbox))
                .collect();
            out.add(*index, &boxes);
        }
        done += batch.indices.len();
        progress(done);
    }
    Ok(out)
}

/// The report of `detector` on `dataset` with `metric`: [`detect_dataset`], then the evaluation.
/// The metric's settings are checked before the detection pass.
pub fn evaluate(
    detector: &Detector,
    dataset: &Arc<DetectionDataset>,
    options: &EvalOptions,
    metric: &Metric,
) -> Result<Report, EvaluationError> {
    if let Metric::Voc(config) = metric {
        config
            .validate()
            .map_err(|e| EvaluationError::Setting(e.named("iou-threshold")))?;
    }
    detect_dataset(detector, dataset, options, |_| {})?.evaluate(metric)
}
