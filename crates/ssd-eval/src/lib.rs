//! Detection metrics: PASCAL VOC AP exactly as the devkit computes it, and COCO's AP/AR exactly
//! as pycocotools computes them ([`CocoEvaluator`], on the `hotcoco` engine); [`Metric`] picks one
//! and [`Report`] holds either result.
//!
//! - [`VocEvaluator`]: ground truth of an image set (image ids and objects; boxes in the
//!   program's 0-based pixels become the devkit's with [`devkit_box`]), detections added image
//!   by image ([`VocEvaluator::add`]) or read from the devkit's results files ([`read_results`]);
//!   [`VocEvaluator::evaluate`] gives per-class AP, precision and recall and the mAP
//!   ([`Evaluation`]), as a table or JSON.
//! - Semantics of `VOCevaldet.m` (as py-faster-rcnn's `voc_eval` ports it): per class, detections
//!   ranked by score (stable on ties); boxes in 1-based pixels with the `+1` IoU
//!   ([`devkit_iou`]); each detection is compared with the ground truth of highest IoU in its
//!   image; at IoU `>= 0.5` ([`IouRule::AtLeast`], the devkit's; py-faster-rcnn's `>` is
//!   [`IouRule::Above`]) a difficult object makes it neither true nor false positive, an
//!   undetected object makes it a true positive, an already detected one a duplicate (false
//!   positive); below, a false positive. Difficult objects are not in the recall denominator; a
//!   class without non-difficult ground truth has no AP and is left out of the mean.
//! - AP: VOC07 11-point by default ([`ApMetric::Voc07`], the SSD paper's 77.2) or VOC2010+ area
//!   ([`ApMetric::Area`]).
//! - [`write_results`] writes `comp4_det_<set>_<class>.txt` files the official devkit reads.
//!
//! This crate depends on `ssd-core` alone (no Burn, no image decoding): `ssd-train` builds an
//! evaluator from a VOC dataset and runs the network.
//!
//! ```
//! use ssd_eval::{Detection, EvalConfig, GroundTruthObject, VocEvaluator};
//!
//! let gt = GroundTruthObject { label: 1, bbox: [10.0, 10.0, 50.0, 50.0], difficult: false };
//! let mut eval = VocEvaluator::new(vec!["cat".into()], vec![("000001".into(), vec![gt])])?;
//! eval.add("000001", &[Detection { label: 1, score: 0.9, bbox: [12.0, 11.0, 50.0, 52.0] }])?;
//! let result = eval.evaluate(&EvalConfig::default())?;
//! assert!(result.map.is_some_and(|m| (m - 1.0).abs() < 1e-12));
//! # Ok::<(), ssd_eval::EvalError>(())
//! ```

mod ap;
mod coco;
mod error;
mod evaluator;
mod metric;
mod results;

pub use ap::{ApMetric, area_ap, average_precision, voc07_ap};
pub use coco::{
    COCO_STATS, CocoClass, CocoDetection, CocoEvaluation, CocoEvaluator, CocoImage, CocoObject,
    read_coco_results, write_coco_results,
};
pub use error::EvalError;
pub use evaluator::{
    ClassEvaluation, Detection, EvalConfig, Evaluation, GroundTruthObject, IouRule, PixelBox,
    VocEvaluator, devkit_box, devkit_iou,
};
pub use metric::{ClassCurve, Metric, Report, ReportCurves};
pub use results::{
    DEFAULT_COMPETITION, MissingClass, find_results_files, read_results, results_file_name,
    write_results,
};
