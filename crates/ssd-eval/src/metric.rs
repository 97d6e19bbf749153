//! The metric, independent of the dataset's format: VOC AP (07 11-point or area) or COCO's.

use crate::{CocoEvaluation, EvalConfig, Evaluation};

/// Which metric to compute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// VOC AP per class at one IoU threshold ([`EvalConfig`]).
    Voc(EvalConfig),
    /// COCO's 12 numbers (AP at IoU 0.50:0.95 first) and per-category AP.
    Coco,
}

impl Default for Metric {
    /// The paper's: VOC07 11-point AP at IoU 0.5.
    fn default() -> Self {
        Metric::Voc(EvalConfig::default())
    }
}

impl Metric {
    /// `voc07`, `area` or `coco`.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Voc(c) => c.metric.name(),
            Metric::Coco => "coco",
        }
    }
}

/// The result of an evaluation with either metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// VOC AP per class and the mAP.
    Voc(Evaluation),
    /// COCO's numbers.
    Coco(CocoEvaluation),
}

impl Report {
    /// The headline number: the VOC mAP, or COCO's AP at IoU 0.50:0.95.
    pub fn headline(&self) -> Option<f64> {
        match self {
            Report::Voc(e) => e.map,
            Report::Coco(e) => e.ap(),
        }
    }

    /// The table the CLI prints.
    pub fn table(&self) -> String {
        match self {
            Report::Voc(e) => e.table(),
            Report::Coco(e) => e.table(),
        }
    }

    /// The JSON the CLI prints with `--json` (`{"metric", "map", "ap": {...}, ...}`).
    pub fn to_json(&self) -> String {
        match self {
            Report::Voc(e) => e.to_json(),
            Report::Coco(e) => e.to_json(),
        }
    }

    /// The report as curves to draw: each class's precision against recall at its first IoU
    /// threshold (VOC: every detection's point; COCO: the 101 interpolated points at IoU 0.5,
    /// undefined ones left out), and for COCO, AP against the IoU threshold.
    pub fn curves(&self) -> ReportCurves {
        match self {
            Report::Voc(e) => ReportCurves {
                title: format!("precision-recall at IoU {}", e.config.iou_threshold),
                precision_recall: e
                    .classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.ap.is_some())
                    .map(|(i, c)| {
                        let points = c.recall.iter().copied().zip(c.precision.iter().copied());
                        ClassCurve {
                            index: i,
                            name: c.name.clone(),
                            points: points.collect(),
                        }
                    })
                    .collect(),
                ap_by_iou: None,
            },
            Report::Coco(e) => ReportCurves {
                title: "precision-recall at IoU 0.5 (COCO, 101 points)".to_owned(),
                precision_recall: e
                    .classes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        let last = (c.precision_50.len().max(2) - 1) as f64;
                        let points: Vec<(f64, f64)> = c
                            .precision_50
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| **p >= 0.0)
                            .map(|(r, p)| (r as f64 / last, *p))
                            .collect();
                        (!points.is_empty()).then(|| ClassCurve {
                            index: i,
                            name: c.name.clone(),
                            points,
                        })
                    })
                    .collect(),
                ap_by_iou: Some(
                    e.ap_by_iou
                        .iter()
                        .copied()
                        .filter(|(_, a)| *a >= 0.0)
                        .collect(),
                ),
            },
        }
    }
}

/// A [`Report`] as curves ([`Report::curves`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportCurves {
    /// What the precision-recall curves are (`precision-recall at IoU 0.5`).
    pub title: String,
    /// The classes that have a curve.
    pub precision_recall: Vec<ClassCurve>,
    /// AP against the IoU threshold, for metrics over several thresholds (COCO's).
    pub ap_by_iou: Option<Vec<(f64, f64)>>,
}

/// One class's precision-recall curve.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassCurve {
    /// Its index in the class list (0-based).
    pub index: usize,
    /// Its name.
    pub name: String,
    /// `(recall, precision)` points.
    pub points: Vec<(f64, f64)>,
}
