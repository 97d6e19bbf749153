//! Property tests of the geometry invariants.

use proptest::prelude::*;
use ssd_core::{BoxCoder, CenterBox, CornerBox, PriorConfig, iou, iou_matrix, match_priors, nms};

fn proper_box() -> impl Strategy<Value = CornerBox> {
    (0.0f32..0.9, 0.0f32..0.9, 0.01f32..1.0, 0.01f32..1.0)
        .prop_map(|(x, y, w, h)| CornerBox::new(x, y, x + w, y + h))
}

fn any_box() -> impl Strategy<Value = CornerBox> {
    (-1.0f32..2.0, -1.0f32..2.0, -1.0f32..2.0, -1.0f32..2.0)
        .prop_map(|(a, b, c, d)| CornerBox::new(a, b, c, d))
}

proptest! {
    #[test]
    fn iou_is_symmetric_and_in_unit_range(a in any_box(), b in any_box()) {
        let ab = iou(&a, &b);
        prop_assert_eq!(ab, iou(&b, &a));
        prop_assert!((0.0..=1.0).contains(&ab), "iou {}", ab);
    }

    #[test]
    fn iou_with_itself_is_one(a in proper_box()) {
        prop_assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn decode_inverts_encode(gt in proper_box(), p in proper_box()) {
        let coder = BoxCoder::default();
        let prior = p.to_center();
        let enc = coder.encode(&gt, &prior).expect("proper boxes encode");
        let dec = coder.decode(enc, &prior);
        for (x, y) in dec.to_array().iter().zip(gt.to_array()) {
            prop_assert!((x - y).abs() < 1e-5, "{:?} vs {:?}", dec, gt);
        }
    }

    #[test]
    fn nms_output_is_sorted_and_pairwise_below_threshold(
        items in prop::collection::vec((proper_box(), 0.0f32..1.0), 0..60),
        threshold in 0.1f32..0.9,
    ) {
        let (boxes, scores): (Vec<CornerBox>, Vec<f32>) = items.into_iter().unzip();
        let keep = nms(&boxes, &scores, threshold).expect("lengths agree");
        for w in keep.windows(2) {
            prop_assert!(scores[w[0]] >= scores[w[1]]);
        }
        for (k, &i) in keep.iter().enumerate() {
            for &j in &keep[k + 1..] {
                prop_assert!(iou(&boxes[i], &boxes[j]) <= threshold);
            }
        }
        // Every dropped box overlaps a kept, better-or-equal box by more than the threshold.
        for i in (0..boxes.len()).filter(|i| !keep.contains(i)) {
            prop_assert!(keep.iter().any(|&k| iou(&boxes[k], &boxes[i]) > threshold));
        }
    }

    #[test]
    fn every_ground_truth_gets_a_prior(gts in prop::collection::vec(proper_box(), 1..8)) {
        let priors: Vec<CenterBox> = PriorConfig::ssd300_voc().priors().expect("valid preset");
        let labels: Vec<usize> = (1..=gts.len()).collect();
        let t = match_priors(&gts, &labels, &priors, 0.5, &BoxCoder::default()).expect("proper");
        prop_assert_eq!(t.labels.len(), priors.len());
        prop_assert!(t.locations.iter().flatten().all(|v| v.is_finite()));
        // Each ground truth's best prior is positive (its own label, or a later ground truth's
        // when two share a best prior), however low that IoU.
        let corners: Vec<CornerBox> = priors.iter().map(CenterBox::to_corner).collect();
        for gt in &gts {
            let overlaps = iou_matrix(std::slice::from_ref(gt), &corners);
            let best = (0..overlaps.len()).fold(0, |b, p| if overlaps[p] > overlaps[b] { p } else { b });
            prop_assert!(t.labels[best] != 0, "best prior {} of {:?} is background", best, gt);
        }
        // Every prior that reaches IoU 0.5 with some ground truth is positive.
        let all = iou_matrix(&gts, &corners);
        for p in 0..priors.len() {
            let reaches = (0..gts.len()).any(|g| all[g * priors.len() + p] >= 0.5);
            prop_assert!(!reaches || t.labels[p] != 0, "prior {} reaches 0.5 but is background", p);
        }
    }
}

#[test]
fn clipped_priors_lie_in_the_unit_square() {
    for config in [PriorConfig::ssd300_voc(), PriorConfig::ssd512_voc()] {
        let priors = config.priors().expect("valid preset");
        assert!(
            priors
                .iter()
                .all(|p| p.to_array().iter().all(|v| (0.0..=1.0).contains(v)))
        );
    }
}
