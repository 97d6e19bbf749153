//! Property tests of the augmentation's box side (the geometric plan), and of flip on pixels.

use image::RgbImage;
use proptest::prelude::*;
use ssd_core::{CornerBox, iou};
use ssd_data::{Augment, CropSampler, SampleRng, flip_box};

/// Up to 6 proper boxes in the unit square, with distinct labels 1..=n.
fn boxes() -> impl Strategy<Value = Vec<CornerBox>> {
    prop::collection::vec(
        (0.0f32..0.95, 0.0f32..0.95, 0.01f32..1.0, 0.01f32..1.0),
        0..6,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(x, y, w, h)| {
                CornerBox::new(
                    x,
                    y,
                    (x + w * (1.0 - x)).max(x + 1e-3),
                    (y + h * (1.0 - y)).max(y + 1e-3),
                )
            })
            .collect()
    })
}

/// The plan's map from an original normalised box to normalised output coordinates, written out
/// independently of the crate (expand offset, crop, flip), before clipping.
fn project(b: &CornerBox, plan: &ssd_data::GeometryPlan) -> CornerBox {
    let (w, h) = (f64::from(plan.width), f64::from(plan.height));
    let c = plan.crop;
    let (cw, ch) = (f64::from(c.xmax - c.xmin), f64::from(c.ymax - c.ymin));
    let x =
        |v: f32| ((f64::from(v) * w + plan.offset[0]) / plan.canvas[0] - f64::from(c.xmin)) / cw;
    let y =
        |v: f32| ((f64::from(v) * h + plan.offset[1]) / plan.canvas[1] - f64::from(c.ymin)) / ch;
    let (x0, x1) = (x(b.xmin), x(b.xmax));
    let (x0, x1) = if plan.flip {
        (1.0 - x1, 1.0 - x0)
    } else {
        (x0, x1)
    };
    CornerBox::new(x0 as f32, y(b.ymin) as f32, x1 as f32, y(b.ymax) as f32)
}

/// The original boxes in normalised canvas coordinates (after expand, before crop).
fn on_canvas(b: &CornerBox, plan: &ssd_data::GeometryPlan) -> CornerBox {
    let (w, h) = (plan.width as f32, plan.height as f32);
    let (cw, ch) = (plan.canvas[0] as f32, plan.canvas[1] as f32);
    let (ox, oy) = (plan.offset[0] as f32, plan.offset[1] as f32);
    CornerBox::new(
        (b.xmin * w + ox) / cw,
        (b.ymin * h + oy) / ch,
        (b.xmax * w + ox) / cw,
        (b.ymax * h + oy) / ch,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn boxes_stay_inside_and_proper_and_labels_stay_aligned(
        gt in boxes(),
        seed in any::<u64>(),
        width in 20u32..800,
        height in 20u32..800,
    ) {
        let augment = Augment::ssd_train(300);
        let labels: Vec<usize> = (1..=gt.len()).collect();
        let mut rng = SampleRng::new(seed);
        let (plan, out_boxes, out_labels) = augment.plan(width, height, &gt, &labels, &mut rng);
        prop_assert_eq!(out_boxes.len(), out_labels.len());
        if !gt.is_empty() {
            prop_assert!(!out_boxes.is_empty(), "a crop emptied the image: {:?}", plan);
        }
        let mut previous = 0;
        for (b, &label) in out_boxes.iter().zip(&out_labels) {
            prop_assert!(b.xmin >= 0.0 && b.ymin >= 0.0 && b.xmax <= 1.0 && b.ymax <= 1.0, "{:?}", b);
            prop_assert!(b.xmax > b.xmin && b.ymax > b.ymin, "{:?}", b);
            // Labels keep their order and each box is its own original, moved by the plan.
            prop_assert!(label > previous);
            previous = label;
            let expected = project(&gt[label - 1], &plan);
            let clipped = CornerBox::new(
                expected.xmin.clamp(0.0, 1.0),
                expected.ymin.clamp(0.0, 1.0),
                expected.xmax.clamp(0.0, 1.0),
                expected.ymax.clamp(0.0, 1.0),
            );
            for (a, e) in [(b.xmin, clipped.xmin), (b.ymin, clipped.ymin), (b.xmax, clipped.xmax), (b.ymax, clipped.ymax)] {
                prop_assert!((a - e).abs() < 1e-4, "label {} got {:?} expected {:?}", label, b, clipped);
            }
        }
    }

    #[test]
    fn the_chosen_crop_meets_its_samplers_min_iou(
        gt in boxes(),
        seed in any::<u64>(),
        width in 20u32..800,
        height in 20u32..800,
    ) {
        let augment = Augment::ssd_train(300);
        let labels: Vec<usize> = (1..=gt.len()).collect();
        let (plan, _, _) = augment.plan(width, height, &gt, &labels, &mut SampleRng::new(seed));
        let sampler = plan.sampler.map(|s| &augment.samplers[s]);
        if let Some(min) = sampler.and_then(|s| s.min_iou) {
            let best = gt
                .iter()
                .map(|b| iou(&on_canvas(b, &plan), &plan.crop))
                .fold(0.0f32, f32::max);
            prop_assert!(best >= min - 1e-6, "sampler min IoU {} but best IoU {}", min, best);
        }
        // Every sampler's crop is inside the canvas with scale and aspect in range.
        if let Some(s) = sampler {
            let c = plan.crop;
            prop_assert!(c.xmin >= 0.0 && c.ymin >= 0.0 && c.xmax <= 1.0 + 1e-6 && c.ymax <= 1.0 + 1e-6);
            let area = (c.xmax - c.xmin) * (c.ymax - c.ymin);
            let (lo, hi) = (s.scale[0] as f32, s.scale[1] as f32);
            prop_assert!(area >= lo * lo - 1e-4 && area <= hi * hi + 1e-4, "area {}", area);
        }
    }

    #[test]
    fn flipping_boxes_twice_is_identity(gt in boxes()) {
        for b in &gt {
            let back = flip_box(&flip_box(b));
            prop_assert!((back.xmin - b.xmin).abs() < 1e-6 && (back.xmax - b.xmax).abs() < 1e-6);
            prop_assert_eq!((back.ymin, back.ymax), (b.ymin, b.ymax));
        }
    }
}

/// Each min-IoU sampler is chosen sometimes, and over many draws every chosen crop meets its
/// bound: the property amdegroot's crop (which never checks the minimum) fails.
#[test]
fn every_sampler_is_used_and_min_iou_holds_for_each() {
    let augment = Augment::ssd_train(300);
    let gt = [
        CornerBox::new(0.04, 0.05, 0.97, 0.96),
        CornerBox::new(0.05, 0.6, 0.2, 0.95),
    ];
    let mut used = vec![0usize; augment.samplers.len()];
    for seed in 0..4000 {
        let (plan, boxes, _) = augment.plan(500, 375, &gt, &[1, 2], &mut SampleRng::new(seed));
        let s = plan
            .sampler
            .expect("the whole-image sampler always qualifies");
        used[s] += 1;
        assert!(!boxes.is_empty());
        if let Some(min) = augment.samplers[s].min_iou {
            let best = gt
                .iter()
                .map(|b| iou(&on_canvas(b, &plan), &plan.crop))
                .fold(0.0, f32::max);
            assert!(
                best >= min,
                "seed {seed}: sampler {s} min {min} best {best}"
            );
        }
    }
    assert!(used.iter().all(|&n| n > 0), "{used:?}");
    assert_eq!(augment.samplers.len(), 7);
    assert_eq!(augment.samplers[0], CropSampler::whole_image());
}

#[test]
fn rendering_a_flip_equals_rendering_the_mirrored_image() {
    let image = RgbImage::from_fn(37, 23, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x * y) % 256) as u8])
    });
    let mirrored = image::imageops::flip_horizontal(&image);
    let augment = Augment::eval(16);
    let (mut plan, _, _) = augment.plan(37, 23, &[], &[], &mut SampleRng::new(0));
    let plain = augment.render(&mirrored, &plan);
    plan.flip = true;
    let flipped = augment.render(&image, &plan);
    for (a, b) in plain.iter().zip(&flipped) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
    // And flipping twice gives the original back.
    let twice = image::imageops::flip_horizontal(&mirrored);
    assert_eq!(twice, image);
}

#[test]
fn a_seed_reproduces_a_sample_exactly() {
    let image = RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, 77])
    });
    let gt = [CornerBox::new(0.1, 0.1, 0.6, 0.7)];
    let augment = Augment::ssd_train(32);
    let a = augment.apply(
        image.clone(),
        &gt,
        &[3],
        &mut SampleRng::for_sample(9, 2, 17),
    );
    let b = augment.apply(
        image.clone(),
        &gt,
        &[3],
        &mut SampleRng::for_sample(9, 2, 17),
    );
    assert_eq!(a, b);
    let different = (0..20).any(|i| {
        augment
            .apply(
                image.clone(),
                &gt,
                &[3],
                &mut SampleRng::for_sample(9, 3, i),
            )
            .pixels
            != a.pixels
    });
    assert!(different);
}
