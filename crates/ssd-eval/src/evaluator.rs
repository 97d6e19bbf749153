//! The VOC detection evaluation (`VOCevaldet.m`, as py-faster-rcnn's `voc_eval` ports it).

use std::collections::HashMap;

use ssd_core::parallel_map;

use crate::{ApMetric, EvalError, average_precision};

/// A box in VOC pixel coordinates: 1-based and inclusive, `[xmin, ymin, xmax, ymax]`, so a box's
/// width is `xmax - xmin + 1`. This is the convention of the annotation files and of the devkit's
/// result files.
pub type PixelBox = [f64; 4];

/// The devkit's box for a box in the program's convention (0-based continuous pixels, as
/// `ssd-data` reads annotations and `ssd-model` reports detections): each coordinate plus one.
///
/// This is the only place where the VOC `+1` is applied; ground truth and detections both go
/// through it.
pub fn devkit_box(zero_based: [f32; 4]) -> PixelBox {
    zero_based.map(|v| f64::from(v) + 1.0)
}

/// One ground-truth object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundTruthObject {
    /// 1-based class label (index into the class list plus one).
    pub label: usize,
    /// The box.
    pub bbox: PixelBox,
    /// Difficult objects neither count as misses nor make detections false positives.
    pub difficult: bool,
}

/// One detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// 1-based class label.
    pub label: usize,
    /// Confidence; higher ranks first.
    pub score: f64,
    /// The box.
    pub bbox: PixelBox,
}

/// How a detection's best IoU is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IouRule {
    /// `iou >= threshold`: the official devkit (`VOCevaldet.m`: `ovmax>=minoverlap`).
    #[default]
    AtLeast,
    /// `iou > threshold`: py-faster-rcnn's `voc_eval` (and the PyTorch ports that copy it).
    Above,
}

impl IouRule {
    /// The name used on the command line (`ge`, `gt`).
    pub fn name(self) -> &'static str {
        match self {
            IouRule::AtLeast => "ge",
            IouRule::Above => "gt",
        }
    }

    fn passes(self, iou: f64, threshold: f64) -> bool {
        match self {
            IouRule::AtLeast => iou >= threshold,
            IouRule::Above => iou > threshold,
        }
    }
}

impl std::str::FromStr for IouRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ge" | ">=" | "devkit" => Ok(IouRule::AtLeast),
            "gt" | ">" | "py-faster-rcnn" => Ok(IouRule::Above),
            other => Err(format!(
                "unknown IoU rule {other:?} (expected ge, the devkit's, or gt, py-faster-rcnn's)"
            )),
        }
    }
}

/// Evaluation settings; the default is the paper's (VOC07 11-point AP at IoU >= 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalConfig {
    /// Which AP.
    pub metric: ApMetric,
    /// IoU a detection needs with a ground truth to match it.
    pub iou_threshold: f64,
    /// `>=` (devkit) or `>` (py-faster-rcnn).
    pub rule: IouRule,
}

impl EvalConfig {
    /// Checks `iou_threshold` is in `(0, 1]`; [`VocEvaluator::evaluate`] refuses a configuration
    /// that fails it.
    pub fn validate(&self) -> Result<(), ssd_core::SettingError> {
        ssd_core::iou_threshold("iou_threshold", self.iou_threshold)
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            metric: ApMetric::Voc07,
            iou_threshold: 0.5,
            rule: IouRule::AtLeast,
        }
    }
}

/// The result for one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassEvaluation {
    /// Class name.
    pub name: String,
    /// AP, or `None` for a class without non-difficult ground truth (excluded from the mean).
    pub ap: Option<f64>,
    /// Non-difficult ground-truth objects (the recall denominator).
    pub num_ground_truth: usize,
    /// Detections of this class.
    pub num_detections: usize,
    /// True positives among them.
    pub true_positives: usize,
    /// Cumulative recall after each detection in score order (empty without ground truth).
    pub recall: Vec<f64>,
    /// Cumulative precision after each detection in score order (empty without ground truth).
    pub precision: Vec<f64>,
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The settings used.
    pub config: EvalConfig,
    /// One entry per class, in class-list order.
    pub classes: Vec<ClassEvaluation>,
    /// Mean AP over the classes that have one (`None` if none has).
    pub map: Option<f64>,
}

impl Evaluation {
    /// A per-class table with the mAP last, as the CLI prints it.
    pub fn table(&self) -> String {
        let width = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "{:<width$}  {:>7}  {:>6}  {:>8}\n",
            "class", "AP", "GT", "dets"
        );
        for c in &self.classes {
            let ap =
                c.ap.map_or_else(|| "-".to_owned(), |ap| format!("{:.4}", ap));
            out += &format!(
                "{:<width$}  {:>7}  {:>6}  {:>8}\n",
                c.name, ap, c.num_ground_truth, c.num_detections
            );
        }
        let map = self
            .map
            .map_or_else(|| "-".to_owned(), |m| format!("{m:.4}"));
        out += &format!(
            "{:<width$}  {:>7}  ({} AP, IoU {} {})\n",
            "mAP",
            map,
            self.config.metric,
            if self.config.rule == IouRule::AtLeast {
                ">="
            } else {
                ">"
            },
            self.config.iou_threshold
        );
        out
    }

    /// `{"metric": "voc07", "map": 0.77, "ap": {"aeroplane": 0.8, ...}}` (`null` where a class has
    /// no AP).
    pub fn to_json(&self) -> String {
        let ap: serde_json::Map<String, serde_json::Value> = self
            .classes
            .iter()
            .map(|c| (c.name.clone(), c.ap.into()))
            .collect();
        serde_json::json!({
            "metric": self.config.metric.name(),
            "iou_threshold": self.config.iou_threshold,
            "iou_rule": self.config.rule.name(),
            "map": self.map,
            "ap": ap,
        })
        .to_string()
    }
}

#[derive(Debug, Clone, Copy)]
struct GtBox {
    bbox: PixelBox,
    difficult: bool,
}

#[derive(Debug, Clone, Copy)]
struct Det {
    image: u32,
    score: f64,
    bbox: PixelBox,
}

/// Ground truth of one class, image by image (`boxes[offsets[i]..offsets[i + 1]]`).
#[derive(Debug, Clone, Default)]
struct ClassTruth {
    offsets: Vec<u32>,
    boxes: Vec<GtBox>,
    positives: usize,
}

/// Collects detections image by image (or from result files) and evaluates them against the
/// ground truth of an image set.
#[derive(Debug, Clone)]
pub struct VocEvaluator {
    classes: Vec<String>,
    image_ids: Vec<String>,
    index: HashMap<String, u32>,
    truth: Vec<ClassTruth>,
    detections: Vec<Vec<Det>>,
}

impl VocEvaluator {
    /// An evaluator for `classes` (label `k` is `classes[k - 1]`) over `images`: each image's id
    /// and ground truth.
    pub fn new(
        classes: Vec<String>,
        images: Vec<(String, Vec<GroundTruthObject>)>,
    ) -> Result<Self, EvalError> {
        let num_classes = classes.len();
        let mut per_class: Vec<Vec<Vec<GtBox>>> = vec![vec![Vec::new(); images.len()]; num_classes];
        let mut image_ids = Vec::with_capacity(images.len());
        let mut index = HashMap::with_capacity(images.len());
        for (i, (id, objects)) in images.into_iter().enumerate() {
            for o in objects {
                if o.label == 0 || o.label > num_classes {
                    return Err(EvalError::UnknownClass {
                        image_id: id,
                        label: o.label,
                        classes: num_classes,
                    });
                }
                per_class[o.label - 1][i].push(GtBox {
                    bbox: o.bbox,
                    difficult: o.difficult,
                });
            }
            if index.insert(id.clone(), i as u32).is_some() {
                return Err(EvalError::DuplicateImage(id));
            }
            image_ids.push(id);
        }
        let truth = per_class
            .into_iter()
            .map(|images| {
                let mut t = ClassTruth {
                    offsets: Vec::with_capacity(images.len() + 1),
                    ..ClassTruth::default()
                };
                t.offsets.push(0);
                for boxes in images {
                    t.positives += boxes.iter().filter(|b| !b.difficult).count();
                    t.boxes.extend(boxes);
                    t.offsets.push(t.boxes.len() as u32);
                }
                t
            })
            .collect();
        Ok(Self {
            detections: vec![Vec::new(); num_classes],
            classes,
            image_ids,
            index,
            truth,
        })
    }

    /// The class names.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The image ids, in image-set order.
    pub fn image_ids(&self) -> &[String] {
        &self.image_ids
    }

    /// Whether `image_id` is in the image set.
    pub fn contains_image(&self, image_id: &str) -> bool {
        self.index.contains_key(image_id)
    }

    /// Detections added so far, all classes.
    pub fn num_detections(&self) -> usize {
        self.detections.iter().map(Vec::len).sum()
    }

    /// Adds one image's detections (any classes, any order). Within a class, detections with
    /// equal scores rank in the order they were added.
    pub fn add(&mut self, image_id: &str, detections: &[Detection]) -> Result<(), EvalError> {
        let image = *self
            .index
            .get(image_id)
            .ok_or_else(|| EvalError::UnknownImage {
                path: None,
                line: None,
                image_id: image_id.to_owned(),
            })?;
        for d in detections {
            if !d.score.is_finite() || d.bbox.iter().any(|v| !v.is_finite()) {
                return Err(EvalError::NonFinite {
                    image_id: image_id.to_owned(),
                });
            }
            if d.label == 0 || d.label > self.classes.len() {
                return Err(EvalError::UnknownClass {
                    image_id: image_id.to_owned(),
                    label: d.label,
                    classes: self.classes.len(),
                });
            }
            self.detections[d.label - 1].push(Det {
                image,
                score: d.score,
                bbox: d.bbox,
            });
        }
        Ok(())
    }

    /// Adds one detection of class `label` for the image at `image` (an index into
    /// [`VocEvaluator::image_ids`]); used by the result-file reader.
    pub(crate) fn push(&mut self, label: usize, image: u32, score: f64, bbox: PixelBox) {
        self.detections[label - 1].push(Det { image, score, bbox });
    }

    /// The image-set index of an id.
    pub(crate) fn image_index(&self, image_id: &str) -> Option<u32> {
        self.index.get(image_id).copied()
    }

    /// Removes all detections (the ground truth stays).
    pub fn clear_detections(&mut self) {
        for d in &mut self.detections {
            d.clear();
        }
    }

    /// The detections of class `label` as `(image id, score, box)`, in the order added.
    pub fn class_detections(&self, label: usize) -> impl Iterator<Item = (&str, f64, PixelBox)> {
        self.detections[label - 1]
            .iter()
            .map(|d| (self.image_ids[d.image as usize].as_str(), d.score, d.bbox))
    }

    /// Evaluates every class (classes in parallel).
    pub fn evaluate(&self, config: &EvalConfig) -> Result<Evaluation, EvalError> {
        config.validate()?;
        let indices: Vec<usize> = (0..self.classes.len()).collect();
        let classes = parallel_map(&indices, |_, &c| self.evaluate_class(c, config));
        let aps: Vec<f64> = classes.iter().filter_map(|c| c.ap).collect();
        let map = (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64);
        Ok(Evaluation {
            config: *config,
            classes,
            map,
        })
    }

    fn evaluate_class(&self, class: usize, config: &EvalConfig) -> ClassEvaluation {
        let truth = &self.truth[class];
        let dets = &self.detections[class];
        let mut order: Vec<u32> = (0..dets.len() as u32).collect();
        // Stable: equal scores keep the order in which they were added.
        order.sort_by(|&a, &b| dets[b as usize].score.total_cmp(&dets[a as usize].score));
        let mut detected = vec![false; truth.boxes.len()];
        let mut tp_cum = Vec::with_capacity(dets.len());
        let mut fp_cum = Vec::with_capacity(dets.len());
        let (mut tp, mut fp) = (0usize, 0usize);
        for &d in &order {
            let det = &dets[d as usize];
            let image = det.image as usize;
            let (start, end) = (
                truth.offsets[image] as usize,
                truth.offsets[image + 1] as usize,
            );
            // The ground truth of highest IoU, matched or not, difficult or not (first on ties).
            let mut best = f64::NEG_INFINITY;
            let mut best_at = start;
            for (j, gt) in truth.boxes[start..end].iter().enumerate() {
                let overlap = devkit_iou(&det.bbox, &gt.bbox);
                if overlap > best {
                    best = overlap;
                    best_at = start + j;
                }
            }
            if start < end && config.rule.passes(best, config.iou_threshold) {
                if !truth.boxes[best_at].difficult {
                    if detected[best_at] {
                        fp += 1;
                    } else {
                        detected[best_at] = true;
                        tp += 1;
                    }
                }
            } else {
                fp += 1;
            }
            tp_cum.push(tp as f64);
            fp_cum.push(fp as f64);
        }
        let (ap, recall, precision) = if truth.positives == 0 {
            (None, Vec::new(), Vec::new())
        } else {
            let npos = truth.positives as f64;
            let recall: Vec<f64> = tp_cum.iter().map(|t| t / npos).collect();
            let precision: Vec<f64> = tp_cum
                .iter()
                .zip(&fp_cum)
                .map(|(t, f)| t / (t + f).max(f64::EPSILON))
                .collect();
            (
                Some(average_precision(&recall, &precision, config.metric)),
                recall,
                precision,
            )
        };
        ClassEvaluation {
            name: self.classes[class].clone(),
            ap,
            num_ground_truth: truth.positives,
            num_detections: dets.len(),
            true_positives: tp,
            recall,
            precision,
        }
    }
}

/// IoU with the devkit's `+1` on widths and heights, in py-faster-rcnn's order of operations.
pub fn devkit_iou(a: &PixelBox, b: &PixelBox) -> f64 {
    let ixmin = a[0].max(b[0]);
    let iymin = a[1].max(b[1]);
    let ixmax = a[2].min(b[2]);
    let iymax = a[3].min(b[3]);
    let iw = (ixmax - ixmin + 1.0).max(0.0);
    let ih = (iymax - iymin + 1.0).max(0.0);
    let inters = iw * ih;
    let union = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0)
        + (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0)
        - inters;
    inters / union
}
