//! Matching prior boxes to ground truth (SSD paper §2.2 "Matching strategy").

use crate::boxes::iou_with_area;
use crate::{BoxCoder, CenterBox, CoreError, CornerBox};

/// Training targets for one image: one label and one encoded location per prior.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriorTargets {
    /// Class of each prior, `[P]`: 0 is background, `1..=C` the ground-truth class.
    pub labels: Vec<usize>,
    /// Encoded offsets of each prior's best ground truth, `[P][4]` (see [`BoxCoder::encode`]).
    /// Background priors carry the encoding of their best-overlapping ground truth too, as in
    /// amdegroot and the Caffe original; the loss ignores them. All zero when there is no ground
    /// truth.
    pub locations: Vec<[f32; 4]>,
}

impl PriorTargets {
    /// Number of priors labelled with a class (not background).
    pub fn num_positives(&self) -> usize {
        self.labels.iter().filter(|&&l| l != 0).count()
    }
}

/// Assigns ground truth to priors.
///
/// - every prior whose best IoU with a ground truth is `>= threshold` takes that ground truth
///   (ties: the earlier ground truth);
/// - every ground truth is then forced onto its own best prior (ties: the earlier prior), even
///   below the threshold; when two ground truths share a best prior, the later one wins
///   (amdegroot's `match`, lufficc's `assign_priors`).
///
/// `labels` are 1-based class indices (0 is background and is refused). Ground-truth boxes are in
/// the same normalised corner coordinates as the priors. A ground-truth box without a positive
/// finite width and height is refused with [`CoreError::DegenerateBox`] naming its index, before
/// anything reaches `ln(0)`. With no ground truth every prior is background.
pub fn match_priors(
    ground_truth: &[CornerBox],
    labels: &[usize],
    priors: &[CenterBox],
    threshold: f32,
    coder: &BoxCoder,
) -> Result<PriorTargets, CoreError> {
    check_ground_truth(ground_truth, labels)?;
    if ground_truth.is_empty() {
        return Ok(PriorTargets {
            labels: vec![0; priors.len()],
            locations: vec![[0.0; 4]; priors.len()],
        });
    }
    let prior_corners: Vec<CornerBox> = priors.iter().map(CenterBox::to_corner).collect();
    let gt_areas: Vec<f32> = ground_truth.iter().map(CornerBox::area).collect();

    // Best ground truth for each prior, and best prior for each ground truth, in one pass.
    let mut best_gt = vec![0usize; priors.len()];
    let mut best_gt_iou = vec![f32::NEG_INFINITY; priors.len()];
    let mut best_prior = vec![0usize; ground_truth.len()];
    let mut best_prior_iou = vec![f32::NEG_INFINITY; ground_truth.len()];
    for (p, prior) in prior_corners.iter().enumerate() {
        let prior_area = prior.area();
        for (g, gt) in ground_truth.iter().enumerate() {
            let overlap = iou_with_area(gt, gt_areas[g], prior, prior_area);
            if overlap > best_gt_iou[p] {
                best_gt_iou[p] = overlap;
                best_gt[p] = g;
            }
            if overlap > best_prior_iou[g] {
                best_prior_iou[g] = overlap;
                best_prior[g] = p;
            }
        }
    }
    // Force each ground truth onto its best prior; later ground truths overwrite earlier ones.
    for (g, &p) in best_prior.iter().enumerate() {
        best_gt[p] = g;
        best_gt_iou[p] = 2.0;
    }

    let labels_out = best_gt
        .iter()
        .zip(&best_gt_iou)
        .map(|(&g, &o)| if o >= threshold { labels[g] } else { 0 })
        .collect();
    let locations = best_gt
        .iter()
        .zip(priors)
        .map(|(&g, prior)| coder.encode_proper(&ground_truth[g], prior))
        .collect();
    Ok(PriorTargets {
        labels: labels_out,
        locations,
    })
}

fn check_ground_truth(ground_truth: &[CornerBox], labels: &[usize]) -> Result<(), CoreError> {
    if ground_truth.len() != labels.len() {
        return Err(CoreError::LengthMismatch {
            what: "ground-truth labels",
            expected: ground_truth.len(),
            found: labels.len(),
        });
    }
    if let Some(index) = labels.iter().position(|&l| l == 0) {
        return Err(CoreError::BackgroundLabel { index });
    }
    if let Some(index) = ground_truth.iter().position(|b| !b.is_proper()) {
        return Err(CoreError::DegenerateBox {
            index,
            bbox: ground_truth[index],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priors_grid() -> Vec<CenterBox> {
        // Four 0.5x0.5 priors tiling the unit square, row-major.
        vec![
            CenterBox::new(0.25, 0.25, 0.5, 0.5),
            CenterBox::new(0.75, 0.25, 0.5, 0.5),
            CenterBox::new(0.25, 0.75, 0.5, 0.5),
            CenterBox::new(0.75, 0.75, 0.5, 0.5),
        ]
    }

    #[test]
    fn threshold_and_forced_best_prior() {
        let priors = priors_grid();
        // Exactly the top-left prior, and a small box inside the bottom-right one (IoU 0.04).
        let gt = [
            CornerBox::new(0.0, 0.0, 0.5, 0.5),
            CornerBox::new(0.8, 0.8, 0.9, 0.9),
        ];
        let t = match_priors(&gt, &[3, 7], &priors, 0.5, &BoxCoder::default());
        let t = t.unwrap_or_default();
        assert_eq!(t.labels, vec![3, 0, 0, 7]);
        assert_eq!(t.num_positives(), 2);
        assert!(t.locations[0].iter().all(|v| v.abs() < 1e-6));
    }

    #[test]
    fn iou_equal_to_threshold_is_positive() {
        let priors = [
            CenterBox::new(0.5, 0.5, 1.0, 1.0),
            CenterBox::new(0.5, 0.25, 1.0, 0.5),
        ];
        // Half of prior 0, and identical to prior 1: prior 0 reaches exactly 0.5.
        let gt = [CornerBox::new(0.0, 0.0, 1.0, 0.5)];
        let t = match_priors(&gt, &[1], &priors, 0.5, &BoxCoder::default()).unwrap_or_default();
        assert_eq!(t.labels, vec![1, 1]);
    }

    #[test]
    fn later_ground_truth_wins_a_shared_best_prior() {
        let priors = priors_grid();
        let gt = [
            CornerBox::new(0.0, 0.0, 0.1, 0.1),
            CornerBox::new(0.0, 0.0, 0.2, 0.2),
        ];
        let t = match_priors(&gt, &[1, 2], &priors, 0.5, &BoxCoder::default()).unwrap_or_default();
        assert_eq!(t.labels, vec![2, 0, 0, 0]);
    }

    #[test]
    fn no_ground_truth_is_all_background() {
        let t = match_priors(&[], &[], &priors_grid(), 0.5, &BoxCoder::default());
        assert_eq!(t.map(|t| t.num_positives()).ok(), Some(0));
    }

    #[test]
    fn bad_ground_truth_is_an_error() {
        let priors = priors_grid();
        let coder = BoxCoder::default();
        let good = CornerBox::new(0.1, 0.1, 0.4, 0.4);
        let flat = CornerBox::new(0.1, 0.1, 0.4, 0.1);
        assert!(matches!(
            match_priors(&[good, flat], &[1, 2], &priors, 0.5, &coder),
            Err(CoreError::DegenerateBox { index: 1, .. })
        ));
        assert!(matches!(
            match_priors(&[good], &[0], &priors, 0.5, &coder),
            Err(CoreError::BackgroundLabel { index: 0 })
        ));
        assert!(matches!(
            match_priors(&[good], &[1, 2], &priors, 0.5, &coder),
            Err(CoreError::LengthMismatch { .. })
        ));
    }
}
