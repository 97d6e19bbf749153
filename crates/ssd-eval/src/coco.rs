//! The COCO detection metric (`COCOeval` with `iouType='bbox'`), computed by the `hotcoco` crate,
//! a pure-Rust engine that reproduces pycocotools' numbers (checked here against pycocotools
//! itself by `tools/make_coco_fixtures.py`).
//!
//! Semantics are pycocotools': per image and category, detections in score order (stable on
//! ties) greedily matched at each IoU threshold 0.50:0.05:0.95 to the unmatched ground truth of
//! highest IoU; crowd regions match any number of times with IoU taken over the detection's
//! area; ground truth outside an area range or crowd is ignored and sorted last; `maxDets` 1, 10
//! and 100 per image; area ranges `[0, 32²]`, `[32², 96²]`, `[96², 1e10]` with inclusive bounds on
//! the file's `area`; 101-point interpolated precision; `-1` for a category without ground truth,
//! left out of the means.

use std::collections::HashMap;

use hotcoco::params::IouType;
use hotcoco::{COCO, COCOeval};

use crate::EvalError;

/// The names of the 12 numbers of `COCOeval.summarize()`, in its order.
pub const COCO_STATS: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// One image of the ground truth: its COCO id and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CocoImage {
    /// The image's `id`.
    pub id: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One ground-truth object in COCO's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoObject {
    /// The category id.
    pub category_id: u64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// The area the size ranges use (COCO's `area`).
    pub area: f64,
    /// A crowd region (or a region to ignore).
    pub crowd: bool,
}

/// One detection in COCO's results format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoDetection {
    /// The image's `id`.
    pub image_id: u64,
    /// The category id.
    pub category_id: u64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// Confidence.
    pub score: f64,
}

/// Ground truth and detections for the COCO metric.
#[derive(Debug, Clone)]
pub struct CocoEvaluator {
    /// `(category id, name)`, ids ascending.
    categories: Vec<(u64, String)>,
    images: Vec<CocoImage>,
    objects: Vec<Vec<CocoObject>>,
    index: HashMap<u64, usize>,
    detections: Vec<CocoDetection>,
}

/// One category's result.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoClass {
    /// The category id.
    pub category_id: u64,
    /// The name.
    pub name: String,
    /// AP at IoU 0.50:0.95 (all areas, 100 detections), `None` without ground truth.
    pub ap: Option<f64>,
    /// Interpolated precision at the 101 recall points at IoU 0.5 (`-1` where undefined), for
    /// precision-recall curves.
    pub precision_50: Vec<f64>,
}

/// The result of a COCO evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoEvaluation {
    /// The 12 numbers of `summarize()` ([`COCO_STATS`] names them); `-1` where undefined.
    pub stats: [f64; 12],
    /// Per category, ids ascending.
    pub classes: Vec<CocoClass>,
    /// AP (all areas, 100 detections) at each IoU threshold 0.50, 0.55, ..., 0.95.
    pub ap_by_iou: Vec<(f64, f64)>,
}

impl CocoEvaluator {
    /// An evaluator over `categories` (`(id, name)`) and `images` with their objects. Image and
    /// category ids must be unique; an object's category must be one of `categories`.
    pub fn new(
        categories: Vec<(u64, String)>,
        images: Vec<(CocoImage, Vec<CocoObject>)>,
    ) -> Result<Self, EvalError> {
        let mut categories = categories;
        categories.sort_by_key(|c| c.0);
        if let Some(w) = categories.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(EvalError::Coco(format!(
                "category id {} is listed twice",
                w[0].0
            )));
        }
        let mut index = HashMap::with_capacity(images.len());
        let mut list = Vec::with_capacity(images.len());
        let mut objects = Vec::with_capacity(images.len());
        for (i, (image, objs)) in images.into_iter().enumerate() {
            if index.insert(image.id, i).is_some() {
                return Err(EvalError::DuplicateImage(image.id.to_string()));
            }
            if let Some(o) = objs.iter().find(|o| {
                categories
                    .binary_search_by_key(&o.category_id, |c| c.0)
                    .is_err()
            }) {
                return Err(EvalError::Coco(format!(
                    "image {} has an object of category {}, which is not a category",
                    image.id, o.category_id
                )));
            }
            list.push(image);
            objects.push(objs);
        }
        Ok(Self {
            categories,
            images: list,
            objects,
            index,
            detections: Vec::new(),
        })
    }

    /// The categories, ids ascending.
    pub fn categories(&self) -> &[(u64, String)] {
        &self.categories
    }

    /// Whether `id` is an image of the ground truth.
    pub fn has_image(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// Whether `id` is a category.
    pub fn has_category(&self, id: u64) -> bool {
        self.categories.binary_search_by_key(&id, |c| c.0).is_ok()
    }

    /// Adds detections. Each must name an image and a category of the ground truth and have a
    /// finite score and box.
    pub fn add(&mut self, detections: &[CocoDetection]) -> Result<(), EvalError> {
        for d in detections {
            if !self.has_image(d.image_id) {
                return Err(EvalError::UnknownImage {
                    path: None,
                    line: None,
                    image_id: d.image_id.to_string(),
                });
            }
            if !self.has_category(d.category_id) {
                return Err(EvalError::Coco(format!(
                    "a detection on image {} has category {}, which is not a category",
                    d.image_id, d.category_id
                )));
            }
            if !d.score.is_finite() || !d.bbox.iter().all(|v| v.is_finite()) {
                return Err(EvalError::Coco(format!(
                    "a detection on image {} has a score or box that is not finite",
                    d.image_id
                )));
            }
        }
        self.detections.extend_from_slice(detections);
        Ok(())
    }

    /// The detections added, in the order added.
    pub fn detections(&self) -> &[CocoDetection] {
        &self.detections
    }

    /// Number of detections added.
    pub fn num_detections(&self) -> usize {
        self.detections.len()
    }

    fn ground_truth(&self) -> COCO {
        let mut dataset = hotcoco::Dataset {
            categories: self
                .categories
                .iter()
                .map(|(id, name)| hotcoco::Category {
                    id: *id,
                    name: name.clone(),
                    ..Default::default()
                })
                .collect(),
            images: self
                .images
                .iter()
                .map(|i| hotcoco::Image {
                    id: i.id,
                    width: i.width,
                    height: i.height,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let mut next_id = 1;
        for (image, objects) in self.images.iter().zip(&self.objects) {
            for o in objects {
                dataset.annotations.push(hotcoco::Annotation {
                    id: next_id,
                    image_id: image.id,
                    category_id: o.category_id,
                    bbox: Some(o.bbox),
                    area: Some(o.area),
                    iscrowd: o.crowd,
                    ..Default::default()
                });
                next_id += 1;
            }
        }
        COCO::from_dataset(dataset)
    }

    /// Runs the evaluation.
    pub fn evaluate(&self) -> Result<CocoEvaluation, EvalError> {
        let gt = self.ground_truth();
        let results: Vec<hotcoco::Annotation> = self
            .detections
            .iter()
            .map(|d| hotcoco::Annotation {
                image_id: d.image_id,
                category_id: d.category_id,
                bbox: Some(d.bbox),
                score: Some(d.score),
                ..Default::default()
            })
            .collect();
        let engine = |e: hotcoco::Error| EvalError::Coco(e.to_string());
        // With no detections at all, every number is 0 (pycocotools refuses an empty list).
        let dt = if results.is_empty() {
            COCO::from_dataset(hotcoco::Dataset {
                images: gt.dataset.images.clone(),
                categories: gt.dataset.categories.clone(),
                ..Default::default()
            })
        } else {
            gt.load_res_anns(results).map_err(engine)?
        };
        let mut ev = COCOeval::new(gt, dt, IouType::Bbox);
        ev.evaluate().map_err(engine)?;
        ev.accumulate();
        let _ = ev.summarize_lines();
        let stats = ev
            .stats()
            .filter(|s| s.len() == 12)
            .ok_or_else(|| EvalError::Coco("the summary has no 12 numbers".into()))?;
        let mut out = [0.0; 12];
        out.copy_from_slice(stats);
        let acc = ev
            .accumulated()
            .ok_or_else(|| EvalError::Coco("nothing accumulated".into()))?;
        let shape = acc.shape;
        let all = ev.params.all_area_idx();
        let last_m = shape.m.saturating_sub(1);
        // pycocotools' mean over the defined (> -1) entries of precision[t, :, k, all, 100].
        let mean = |ts: &[usize], ks: &[usize]| {
            let (mut sum, mut n) = (0.0, 0usize);
            for &t in ts {
                for &k in ks {
                    for r in 0..shape.r {
                        let p = acc.precision[acc.precision_idx(t, r, k, all, last_m)];
                        if p > -1.0 {
                            sum += p;
                            n += 1;
                        }
                    }
                }
            }
            (n > 0).then(|| sum / n as f64)
        };
        let every_t: Vec<usize> = (0..shape.t).collect();
        let every_k: Vec<usize> = (0..shape.k).collect();
        let classes = acc
            .cat_ids
            .iter()
            .enumerate()
            .map(|(k, id)| CocoClass {
                category_id: *id,
                name: self
                    .categories
                    .iter()
                    .find(|c| c.0 == *id)
                    .map(|c| c.1.clone())
                    .unwrap_or_default(),
                ap: mean(&every_t, &[k]),
                precision_50: (0..shape.r)
                    .map(|r| acc.precision[acc.precision_idx(0, r, k, all, last_m)])
                    .collect(),
            })
            .collect();
        let ap_by_iou = ev
            .params
            .iou_thrs
            .iter()
            .enumerate()
            .map(|(t, thr)| (*thr, mean(&[t], &every_k).unwrap_or(-1.0)))
            .collect();
        Ok(CocoEvaluation {
            stats: out,
            classes,
            ap_by_iou,
        })
    }
}

impl CocoEvaluation {
    /// AP at IoU 0.50:0.95, the headline number (`None` when undefined).
    pub fn ap(&self) -> Option<f64> {
        (self.stats[0] >= 0.0).then_some(self.stats[0])
    }

    /// The 12 numbers as `COCOeval.summarize()` prints them, then per-category AP.
    pub fn table(&self) -> String {
        const LINES: [(&str, &str, &str, usize); 12] = [
            ("Average Precision  (AP)", "0.50:0.95", "all", 100),
            ("Average Precision  (AP)", "0.50", "all", 100),
            ("Average Precision  (AP)", "0.75", "all", 100),
            ("Average Precision  (AP)", "0.50:0.95", "small", 100),
            ("Average Precision  (AP)", "0.50:0.95", "medium", 100),
            ("Average Precision  (AP)", "0.50:0.95", "large", 100),
            ("Average Recall     (AR)", "0.50:0.95", "all", 1),
            ("Average Recall     (AR)", "0.50:0.95", "all", 10),
            ("Average Recall     (AR)", "0.50:0.95", "all", 100),
            ("Average Recall     (AR)", "0.50:0.95", "small", 100),
            ("Average Recall     (AR)", "0.50:0.95", "medium", 100),
            ("Average Recall     (AR)", "0.50:0.95", "large", 100),
        ];
        let mut out = String::new();
        for ((what, iou, area, dets), v) in LINES.iter().zip(self.stats) {
            out += &format!(
                " {what} @[ IoU={iou:<9} | area={area:>6} | maxDets={dets:>3} ] = {v:.3}\n"
            );
        }
        let width = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(8)
            .max(8);
        out += &format!("\n{:<width$}  {:>4}  {:>7}\n", "category", "id", "AP");
        for c in &self.classes {
            let ap = c.ap.map_or_else(|| "-".to_owned(), |ap| format!("{ap:.4}"));
            out += &format!("{:<width$}  {:>4}  {:>7}\n", c.name, c.category_id, ap);
        }
        out
    }

    /// `{"metric": "coco", "map": AP, "coco": {"AP": .., ..., "ARl": ..}, "ap": {name: AP}}`
    /// (`null` where a number is undefined).
    pub fn to_json(&self) -> String {
        let defined = |v: f64| (v >= 0.0).then_some(v);
        let coco: serde_json::Map<String, serde_json::Value> = COCO_STATS
            .iter()
            .zip(self.stats)
            .map(|(k, v)| ((*k).to_owned(), defined(v).into()))
            .collect();
        let ap: serde_json::Map<String, serde_json::Value> = self
            .classes
            .iter()
            .map(|c| (c.name.clone(), c.ap.into()))
            .collect();
        serde_json::json!({
            "metric": "coco",
            "map": self.ap(),
            "coco": coco,
            "ap": ap,
        })
        .to_string()
    }
}

/// One entry of a COCO results file, as read.
#[derive(serde::Deserialize)]
struct ResultEntry {
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    score: f64,
}

/// Reads a COCO results file (`[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`, any
/// other keys ignored), as any tool writes it. A value of the wrong type names its JSON path.
pub fn read_coco_results(path: &std::path::Path) -> Result<Vec<CocoDetection>, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let bad = |json_path: String, e: &serde_json::Error| EvalError::BadCocoResults {
        path: path.to_owned(),
        json_path,
        message: format!("{e}"),
    };
    let entries: Vec<ResultEntry> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let json_path = e.path().to_string();
        bad(
            if json_path == "." {
                String::new()
            } else {
                json_path
            },
            e.inner(),
        )
    })?;
    de.end().map_err(|e| bad(String::new(), &e))?;
    Ok(entries
        .into_iter()
        .map(|e| CocoDetection {
            image_id: e.image_id,
            category_id: e.category_id,
            bbox: e.bbox,
            score: e.score,
        })
        .collect())
}

/// Writes detections as a COCO results file, atomically (a failed write leaves the previous
/// file). Numbers are written in their shortest round-trip form.
pub fn write_coco_results(
    path: &std::path::Path,
    detections: &[CocoDetection],
) -> Result<(), EvalError> {
    use std::fmt::Write as _;
    // Never a NaN or an infinity on disk: JSON has no such numbers and no reader takes them.
    if let Some(d) = detections
        .iter()
        .find(|d| !d.score.is_finite() || !d.bbox.iter().all(|v| v.is_finite()))
    {
        return Err(EvalError::Coco(format!(
            "{}: a detection on image {} has a score or box that is not finite; nothing written",
            path.display(),
            d.image_id
        )));
    }
    let mut text = String::with_capacity(detections.len() * 96 + 2);
    text.push('[');
    for (i, d) in detections.iter().enumerate() {
        if i > 0 {
            text.push_str(",\n");
        }
        let [x, y, w, h] = d.bbox;
        let _ = write!(
            text,
            "{{\"image_id\": {}, \"category_id\": {}, \"bbox\": [{x:?}, {y:?}, {w:?}, {h:?}], \"score\": {:?}}}",
            d.image_id, d.category_id, d.score
        );
    }
    text.push_str("]\n");
    let io = |source| EvalError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&partial);
            io(source)
        })
}
