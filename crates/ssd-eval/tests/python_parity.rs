//! Parity with the Python reference (benches/peers/voc_eval.py, written from the devkit
//! definition) on a generated set: `tools/make_eval_fixtures.py` wrote the fixture. Tolerance 1e-9
//! on every AP, recall and precision value, for both metrics and both IoU rules.

use proptest::prelude::*;
use serde_json::Value;
use ssd_eval::{ApMetric, Detection, EvalConfig, GroundTruthObject, IouRule, VocEvaluator};

fn fixture() -> Value {
    let text = include_str!("fixtures/voc_eval_reference.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

fn bbox(v: &Value) -> [f64; 4] {
    let a = v.as_array().expect("bbox array");
    std::array::from_fn(|k| a[k].as_f64().expect("number"))
}

fn evaluator(f: &Value) -> VocEvaluator {
    let classes: Vec<String> = f["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c.as_str().expect("name").to_owned())
        .collect();
    let label = |name: &str| classes.iter().position(|c| c == name).expect("known class") + 1;
    let images = f["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|im| {
            let objects = im["objects"]
                .as_array()
                .expect("objects")
                .iter()
                .map(|o| GroundTruthObject {
                    label: label(o["name"].as_str().expect("name")),
                    bbox: bbox(&o["bbox"]),
                    difficult: o["difficult"].as_bool().expect("flag"),
                })
                .collect();
            (im["id"].as_str().expect("id").to_owned(), objects)
        })
        .collect();
    let mut eval = VocEvaluator::new(classes.clone(), images).expect("ground truth");
    for d in f["detections"].as_array().expect("detections") {
        let det = Detection {
            label: label(d["name"].as_str().expect("name")),
            score: d["score"].as_f64().expect("score"),
            bbox: bbox(&d["bbox"]),
        };
        eval.add(d["image"].as_str().expect("image"), &[det])
            .expect("add");
    }
    eval
}

#[test]
fn matches_the_python_reference_to_1e9() {
    let f = fixture();
    let eval = evaluator(&f);
    let mut checked = 0;
    for (metric, metric_name) in [(ApMetric::Voc07, "voc07"), (ApMetric::Area, "area")] {
        for (rule, rule_name) in [(IouRule::AtLeast, "ge"), (IouRule::Above, "gt")] {
            let expected = &f["expected"][format!("{metric_name}_{rule_name}")];
            let result = eval
                .evaluate(&EvalConfig {
                    metric,
                    rule,
                    iou_threshold: 0.5,
                })
                .expect("evaluate");
            for class in &result.classes {
                let e = &expected["classes"][&class.name];
                match e["ap"].as_f64() {
                    None => assert_eq!(class.ap, None, "{}", class.name),
                    Some(ap) => {
                        let got = class.ap.expect("an AP");
                        assert!(
                            (got - ap).abs() < 1e-9,
                            "{metric_name} {rule_name} {}: {got} vs {ap}",
                            class.name
                        );
                    }
                }
                for (key, ours) in [("recall", &class.recall), ("precision", &class.precision)] {
                    let theirs: Vec<f64> = e[key]
                        .as_array()
                        .expect("array")
                        .iter()
                        .map(|v| v.as_f64().expect("number"))
                        .collect();
                    assert_eq!(ours.len(), theirs.len(), "{} {key}", class.name);
                    for (a, b) in ours.iter().zip(&theirs) {
                        assert!((a - b).abs() < 1e-9, "{} {key}: {a} vs {b}", class.name);
                    }
                    checked += ours.len();
                }
            }
            let map = expected["map"].as_f64().expect("map");
            assert!((result.map.expect("mAP") - map).abs() < 1e-9);
        }
    }
    assert!(checked > 1000, "compared {checked} values");
}

/// The set's detections regrouped by image, images in a shuffled order, scores made distinct.
fn shuffled(f: &Value, eval: &VocEvaluator, order: &[usize]) -> VocEvaluator {
    let mut by_image: Vec<Vec<Detection>> = vec![Vec::new(); eval.image_ids().len()];
    let classes = eval.classes();
    for (k, d) in f["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .enumerate()
    {
        let image = eval
            .image_ids()
            .iter()
            .position(|i| i == d["image"].as_str().expect("id"))
            .expect("image");
        by_image[image].push(Detection {
            label: classes
                .iter()
                .position(|c| c == d["name"].as_str().expect("name"))
                .expect("class")
                + 1,
            // Distinct scores: the reference's two decimals plus a tiny unique offset.
            score: d["score"].as_f64().expect("score") + k as f64 * 1e-9,
            bbox: bbox(&d["bbox"]),
        });
    }
    let mut fresh = eval.clone();
    fresh.clear_detections();
    for &i in order {
        fresh.add(&eval.image_ids()[i], &by_image[i]).expect("add");
    }
    fresh
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn ap_is_in_unit_range_and_image_order_does_not_matter(seed in any::<u64>()) {
        let f = fixture();
        let eval = evaluator(&f);
        let n = eval.image_ids().len();
        let identity: Vec<usize> = (0..n).collect();
        let mut order = identity.clone();
        // Fisher-Yates with a small LCG driven by the seed.
        let mut s = seed | 1;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        for metric in [ApMetric::Voc07, ApMetric::Area] {
            let config = EvalConfig { metric, ..EvalConfig::default() };
            let a = shuffled(&f, &eval, &identity)
                .evaluate(&config)
                .expect("evaluate");
            let b = shuffled(&f, &eval, &order)
                .evaluate(&config)
                .expect("evaluate");
            for (x, y) in a.classes.iter().zip(&b.classes) {
                if let Some(ap) = x.ap {
                    prop_assert!((0.0..=1.0).contains(&ap));
                }
                prop_assert_eq!(x.ap, y.ap);
            }
        }
    }
}
