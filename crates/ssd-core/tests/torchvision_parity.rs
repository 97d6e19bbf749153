//! Parity with torchvision's `ops.box_iou`, `ops.nms` and `ops.batched_nms`, on fixtures written by
//! `tools/make_core_fixtures.py` (random, tied, identical, empty and exactly-0.5 cases). Indices
//! must match exactly; IoU values within 1e-6. Also torchvision's `DefaultBoxGenerator` for
//! `ssd300_vgg16` against `PriorConfig::ssd300_torchvision` (1e-6).

use serde::Deserialize;
use ssd_core::{CornerBox, PriorConfig, batched_nms, iou_matrix, nms};

#[derive(Deserialize)]
struct Fixtures {
    iou: Vec<IouCase>,
    nms: Vec<NmsCase>,
    batched_nms: Vec<NmsCase>,
    torchvision_ssd300_priors: Vec<[f32; 4]>,
}

#[derive(Deserialize)]
struct IouCase {
    name: String,
    a: Vec<[f32; 4]>,
    b: Vec<[f32; 4]>,
    iou: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct NmsCase {
    name: String,
    boxes: Vec<[f32; 4]>,
    scores: Vec<f32>,
    #[serde(default)]
    class_ids: Vec<usize>,
    threshold: f32,
    keep: Vec<usize>,
}

fn fixtures() -> Fixtures {
    let text = include_str!("fixtures/torchvision_ops.json");
    serde_json::from_str(text).expect("fixture JSON parses")
}

fn boxes(v: &[[f32; 4]]) -> Vec<CornerBox> {
    v.iter().map(|&b| CornerBox::from(b)).collect()
}

#[test]
fn iou_matrix_matches_torchvision_box_iou() {
    let f = fixtures();
    assert!(f.iou.len() >= 6);
    for case in &f.iou {
        let got = iou_matrix(&boxes(&case.a), &boxes(&case.b));
        let want: Vec<f32> = case.iou.iter().flatten().copied().collect();
        assert_eq!(got.len(), case.a.len() * case.b.len(), "{}", case.name);
        assert_eq!(got.len(), want.len(), "{}", case.name);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6,
                "{} element {k}: {g} vs torchvision {w}",
                case.name
            );
        }
    }
}

#[test]
fn nms_matches_torchvision_nms() {
    let f = fixtures();
    assert!(f.nms.len() >= 8);
    for case in &f.nms {
        let keep = nms(&boxes(&case.boxes), &case.scores, case.threshold).expect("lengths agree");
        assert_eq!(keep, case.keep, "{}", case.name);
    }
}

#[test]
fn batched_nms_matches_torchvision_batched_nms() {
    let f = fixtures();
    assert!(f.batched_nms.len() >= 4);
    for case in &f.batched_nms {
        let keep = batched_nms(
            &boxes(&case.boxes),
            &case.scores,
            &case.class_ids,
            case.threshold,
        )
        .expect("lengths agree");
        assert_eq!(keep, case.keep, "{}", case.name);
    }
}

#[test]
fn torchvision_default_boxes_match_the_torchvision_preset() {
    let expected = fixtures().torchvision_ssd300_priors;
    let ours = PriorConfig::ssd300_torchvision()
        .priors()
        .expect("valid preset");
    assert_eq!(ours.len(), expected.len());
    let mut worst = 0.0f32;
    for (i, (p, e)) in ours.iter().zip(&expected).enumerate() {
        for (a, b) in [p.cx, p.cy, p.w, p.h].iter().zip(e) {
            let d = (a - b).abs();
            worst = worst.max(d);
            assert!(d < 1e-6, "prior {i}: {p:?} vs {e:?}");
        }
    }
    eprintln!("torchvision default boxes: max |diff| {worst:e}");
    // And they differ from the VOC preset (smaller boxes), so using the right one matters.
    let voc = PriorConfig::ssd300_voc().priors().expect("valid preset");
    assert!((voc[0].w - ours[0].w).abs() > 0.02);
}
