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
}
