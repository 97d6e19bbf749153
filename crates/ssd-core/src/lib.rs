//! Geometry of SSD (Liu et al., "SSD: Single Shot MultiBox Detector", 2016): box types, IoU,
//! prior boxes, the variance box coder, prior matching and non-maximum suppression.
//!
//! This crate is plain Rust on small `Copy` structs and slices: no Burn, no tensors, no files, no
//! images. Every other `ssd` crate builds on it; tensor versions of these operations, where speed
//! needs them, live in `ssd-model` and are tested against the ones here.
//!
//! Conventions (they cause silent bugs when mixed, so the types name them):
//! - [`CornerBox`] is `(xmin, ymin, xmax, ymax)`, [`CenterBox`] is `(cx, cy, w, h)`; coordinates
//!   are continuous `f32`, normalised to `[0, 1]` by image width and height.
//! - [`iou`] has no `+1` (the VOC devkit's pixel convention lives only in `ssd-eval`).
//! - Class 0 is background; ground-truth labels are 1-based.
//! - Priors are ordered level by level, row (y) outer, column (x) inner (see [`PriorConfig`]).
//!
//! ```
//! use ssd_core::{match_priors, nms, BoxCoder, CornerBox, PriorConfig};
//!
//! let priors = PriorConfig::ssd300_voc().priors()?;
//! assert_eq!(priors.len(), 8732);
//!
//! // Training targets for one image with a single object of class 12 ("dog" in VOC order).
//! let gt = [CornerBox::new(0.2, 0.3, 0.6, 0.9)];
//! let targets = match_priors(&gt, &[12], &priors, 0.5, &BoxCoder::default())?;
//! assert!(targets.num_positives() >= 1);
//!
//! // Suppressing duplicates among detections.
//! let boxes = [gt[0], CornerBox::new(0.21, 0.3, 0.6, 0.9), CornerBox::new(0.7, 0.1, 0.9, 0.3)];
//! let keep = nms(&boxes, &[0.9, 0.8, 0.3], 0.45)?;
//! assert_eq!(keep, vec![0, 2]);
//! # Ok::<(), ssd_core::CoreError>(())
//! ```

mod boxes;
mod coder;
mod error;
mod matching;
mod nms;
mod parallel;
mod priors;
mod setting;

pub use boxes::{CenterBox, CornerBox, iou, iou_matrix};
pub use coder::BoxCoder;
pub use error::CoreError;
pub use matching::{PriorTargets, match_priors};
pub use nms::{argsort_desc, batched_nms, nms, top_k};
pub use parallel::parallel_map;
pub use priors::{PriorClip, PriorConfig};
pub use setting::{
    MAX_WORKERS, SettingError, at_least_one, check_setting, iou_threshold, unit_interval, workers,
};
