//! Non-maximum suppression and top-k selection, with torchvision's semantics.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::boxes::iou_with_area;
use crate::{CoreError, CornerBox};

/// Descending score order; equal scores keep the lower index first; NaN scores sort last (they are
/// treated as the lowest score rather than panicking a comparison).
fn by_score_desc(scores: &[f32]) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    |&a, &b| {
        let (sa, sb) = (scores[a], scores[b]);
        sa.is_nan()
            .cmp(&sb.is_nan())
            .then_with(|| sb.total_cmp(&sa))
            .then_with(|| a.cmp(&b))
    }
}

/// Indices of `scores` sorted by descending score (ties: lower index first; NaN last).
pub fn argsort_desc(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(by_score_desc(scores));
    order
}

/// Indices of the `k` highest scores, best first (ties: lower index first; NaN last).
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let cmp = by_score_desc(scores);
    if k < order.len() {
        order.select_nth_unstable_by(k, &cmp);
        order.truncate(k);
    }
    order.sort_by(cmp);
    order
}

fn check_lengths(boxes: usize, scores: usize) -> Result<(), CoreError> {
    if boxes == scores {
        Ok(())
    } else {
        Err(CoreError::LengthMismatch {
            what: "scores",
            expected: boxes,
            found: scores,
        })
    }
}

/// Greedy non-maximum suppression.
///
/// Boxes are visited by descending score (ties: lower index first); a box is dropped when its IoU
/// with an already kept box is `> iou_threshold` (torchvision's `ops.nms`: IoU exactly equal to the
/// threshold survives). Returns the kept indices, best first. NaN scores do not panic: they rank
/// last. Errors only when `boxes` and `scores` differ in length.
pub fn nms(
    boxes: &[CornerBox],
    scores: &[f32],
    iou_threshold: f32,
) -> Result<Vec<usize>, CoreError> {
    check_lengths(boxes.len(), scores.len())?;
    let order = argsort_desc(scores);
    Ok(nms_in_order(boxes, &order, iou_threshold))
}

/// Greedy NMS over the boxes named by `order`, which is already sorted best first.
///
/// The candidates are copied once, in score order, into one contiguous list; after each kept box
/// the survivors are compacted to the front, so later passes only visit boxes still in play.
fn nms_in_order(boxes: &[CornerBox], order: &[usize], iou_threshold: f32) -> Vec<usize> {
    let mut candidates: Vec<(CornerBox, f32, usize)> = order
        .iter()
        .map(|&i| (boxes[i], boxes[i].area(), i))
        .collect();
    let mut keep = Vec::new();
    let mut live = candidates.len();
    let mut head = 0;
    while head < live {
        let (kept, kept_area, kept_index) = candidates[head];
        keep.push(kept_index);
        let mut write = head + 1;
        for read in head + 1..live {
            let (b, area, _) = candidates[read];
            // Tested as `> threshold`, not `<=`: an IoU that is NaN (non-finite input) suppresses
            // nothing, as in torchvision.
            let suppressed = iou_with_area(&kept, kept_area, &b, area) > iou_threshold;
            if !suppressed {
                candidates[write] = candidates[read];
                write += 1;
            }
        }
        live = write;
        head += 1;
    }
    keep
}

/// NMS done independently per class: boxes with different `class_ids` never suppress each other.
///
/// Returns the kept indices over all classes sorted by descending score (ties: lower index first),
/// the output order of torchvision's `ops.batched_nms`.
pub fn batched_nms(
    boxes: &[CornerBox],
    scores: &[f32],
    class_ids: &[usize],
    iou_threshold: f32,
) -> Result<Vec<usize>, CoreError> {
    check_lengths(boxes.len(), scores.len())?;
    if class_ids.len() != boxes.len() {
        return Err(CoreError::LengthMismatch {
            what: "class ids",
            expected: boxes.len(),
            found: class_ids.len(),
        });
    }
    // Group by class, keeping score order inside each class; then merge by score.
    let order = argsort_desc(scores);
    let mut per_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in &order {
        per_class.entry(class_ids[i]).or_default().push(i);
    }
    let mut keep: Vec<usize> = per_class
        .values()
        .flat_map(|members| nms_in_order(boxes, members, iou_threshold))
        .collect();
    keep.sort_by(by_score_desc(scores));
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> CornerBox {
        CornerBox::new(x0, y0, x1, y1)
    }

    #[test]
    fn suppresses_overlaps_above_threshold_only() {
        let boxes = [
            b(0.0, 0.0, 2.0, 2.0),
            b(0.0, 0.0, 2.0, 1.0),
            b(0.1, 0.0, 2.0, 2.0),
        ];
        let scores = [0.9, 0.8, 0.7];
        // Box 1 has IoU exactly 0.5 with box 0: kept at threshold 0.5. Box 2 has IoU 0.95.
        assert_eq!(nms(&boxes, &scores, 0.5).ok(), Some(vec![0, 1]));
    }

    #[test]
    fn ties_keep_the_lower_index() {
        let boxes = [b(0.0, 0.0, 1.0, 1.0), b(0.0, 0.0, 1.0, 1.0)];
        assert_eq!(nms(&boxes, &[0.5, 0.5], 0.5).ok(), Some(vec![0]));
    }

    #[test]
    fn nan_scores_do_not_panic_and_rank_last() {
        let boxes = [
            b(0.0, 0.0, 1.0, 1.0),
            b(2.0, 2.0, 3.0, 3.0),
            b(4.0, 4.0, 5.0, 5.0),
        ];
        let keep = nms(&boxes, &[f32::NAN, 0.1, 0.2], 0.5);
        assert_eq!(keep.ok(), Some(vec![2, 1, 0]));
    }

    #[test]
    fn batched_nms_keeps_other_classes() {
        let boxes = [
            b(0.0, 0.0, 1.0, 1.0),
            b(0.0, 0.0, 1.0, 1.0),
            b(0.0, 0.0, 1.0, 1.0),
        ];
        let keep = batched_nms(&boxes, &[0.3, 0.9, 0.5], &[1, 2, 1], 0.5);
        assert_eq!(keep.ok(), Some(vec![1, 2]));
    }

    #[test]
    fn top_k_picks_best_first() {
        let s = [0.1, 0.9, 0.5, 0.9, f32::NAN];
        assert_eq!(top_k(&s, 3), vec![1, 3, 2]);
        assert_eq!(top_k(&s, 10), vec![1, 3, 2, 0, 4]);
        assert!(top_k(&s, 0).is_empty());
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(matches!(
            nms(&[b(0.0, 0.0, 1.0, 1.0)], &[], 0.5),
            Err(CoreError::LengthMismatch { .. })
        ));
        assert!(matches!(
            batched_nms(&[b(0.0, 0.0, 1.0, 1.0)], &[1.0], &[], 0.5),
            Err(CoreError::LengthMismatch { .. })
        ));
    }
}
