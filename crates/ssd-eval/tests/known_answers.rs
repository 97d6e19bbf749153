//! Hand-made cases with known answers, and the results files.

use ssd_eval::{
    ApMetric, Detection, EvalConfig, EvalError, GroundTruthObject, IouRule, MissingClass,
    VocEvaluator, read_results, write_results,
};

fn gt(label: usize, bbox: [f64; 4], difficult: bool) -> GroundTruthObject {
    GroundTruthObject {
        label,
        bbox,
        difficult,
    }
}

fn det(label: usize, score: f64, bbox: [f64; 4]) -> Detection {
    Detection { label, score, bbox }
}

fn classes(n: usize) -> Vec<String> {
    ["cat", "dog", "bird"][..n]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn ap(eval: &VocEvaluator, metric: ApMetric, class: usize) -> Option<f64> {
    let config = EvalConfig {
        metric,
        ..EvalConfig::default()
    };
    eval.evaluate(&config).expect("evaluate").classes[class].ap
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-12)
}

#[test]
fn perfect_detections_give_ap_one_and_none_give_zero() {
    let images = vec![
        (
            "a".to_string(),
            vec![
                gt(1, [1.0, 1.0, 50.0, 50.0], false),
                gt(2, [60.0, 60.0, 90.0, 99.0], false),
            ],
        ),
        ("b".to_string(), vec![gt(1, [5.0, 5.0, 20.0, 30.0], false)]),
    ];
    let mut eval = VocEvaluator::new(classes(2), images).expect("ground truth");
    eval.add("a", &[det(1, 0.9, [1.0, 1.0, 50.0, 50.0])])
        .expect("add");
    eval.add("b", &[det(1, 0.8, [5.0, 5.0, 20.0, 30.0])])
        .expect("add");
    for metric in [ApMetric::Voc07, ApMetric::Area] {
        assert!(close(ap(&eval, metric, 0), 1.0));
        // "dog" has ground truth but no detections.
        assert!(close(ap(&eval, metric, 1), 0.0));
    }
    let result = eval.evaluate(&EvalConfig::default()).expect("evaluate");
    assert!(result.map.is_some_and(|m| (m - 0.5).abs() < 1e-12));
    assert_eq!(result.classes[0].true_positives, 2);
}

#[test]
fn a_duplicate_is_a_false_positive() {
    let images = vec![(
        "a".to_string(),
        vec![
            gt(1, [1.0, 1.0, 50.0, 50.0], false),
            gt(1, [100.0, 100.0, 150.0, 150.0], false),
        ],
    )];
    let mut eval = VocEvaluator::new(classes(1), images).expect("ground truth");
    eval.add(
        "a",
        &[
            det(1, 0.9, [1.0, 1.0, 50.0, 50.0]),
            det(1, 0.8, [2.0, 1.0, 50.0, 50.0]),
            det(1, 0.7, [100.0, 100.0, 150.0, 150.0]),
        ],
    )
    .expect("add");
    // recall 0.5, 0.5, 1; precision 1, 0.5, 2/3.
    assert!(close(
        ap(&eval, ApMetric::Voc07, 0),
        (6.0 + 5.0 * 2.0 / 3.0) / 11.0
    ));
    assert!(close(ap(&eval, ApMetric::Area, 0), 0.5 + 0.5 * 2.0 / 3.0));
    let result = eval.evaluate(&EvalConfig::default()).expect("evaluate");
    assert_eq!(result.classes[0].precision.len(), 3);
    assert!((result.classes[0].precision[1] - 0.5).abs() < 1e-15);
}

#[test]
fn difficult_objects_are_ignored_and_a_difficult_only_class_has_no_ap() {
    let images = vec![(
        "a".to_string(),
        vec![
            gt(1, [1.0, 1.0, 50.0, 50.0], false),
            gt(1, [100.0, 100.0, 150.0, 150.0], true),
            gt(2, [10.0, 10.0, 30.0, 30.0], true),
        ],
    )];
    let mut eval = VocEvaluator::new(classes(2), images).expect("ground truth");
    eval.add(
        "a",
        &[
            // On the difficult cat: neither true nor false positive, even ranked first.
            det(1, 0.95, [100.0, 100.0, 150.0, 150.0]),
            det(1, 0.9, [1.0, 1.0, 50.0, 50.0]),
            det(2, 0.9, [10.0, 10.0, 30.0, 30.0]),
        ],
    )
    .expect("add");
    let result = eval.evaluate(&EvalConfig::default()).expect("evaluate");
    let cat = &result.classes[0];
    assert_eq!((cat.num_ground_truth, cat.true_positives), (1, 1));
    assert_eq!(cat.recall, vec![0.0, 1.0]);
    assert!(close(cat.ap, 1.0));
    let dog = &result.classes[1];
    assert_eq!(dog.ap, None);
    assert_eq!(dog.num_ground_truth, 0);
    // The mean is over classes with an AP only (11 x 1/11 is 1 + 2e-16 in f64, as in numpy).
    assert!(close(result.map, 1.0));
    let json: serde_json::Value = serde_json::from_str(&result.to_json()).expect("json");
    assert_eq!(json["ap"]["dog"], serde_json::Value::Null);
    assert!((json["map"].as_f64().expect("number") - 1.0).abs() < 1e-12);
    assert_eq!(json["metric"], "voc07");
    assert!(result.table().contains("dog"));
}

#[test]
fn equal_scores_keep_the_order_they_were_added_in() {
    let make = |first_true: bool| {
        let images = vec![("a".to_string(), vec![gt(1, [1.0, 1.0, 50.0, 50.0], false)])];
        let mut eval = VocEvaluator::new(classes(1), images).expect("ground truth");
        let hit = det(1, 0.5, [1.0, 1.0, 50.0, 50.0]);
        let miss = det(1, 0.5, [200.0, 200.0, 250.0, 250.0]);
        let dets = if first_true { [hit, miss] } else { [miss, hit] };
        eval.add("a", &dets).expect("add");
        ap(&eval, ApMetric::Voc07, 0)
    };
    assert!(close(make(true), 1.0));
    assert!(close(make(false), 0.5));
}

#[test]
fn iou_of_exactly_one_half_under_the_plus_one_rule() {
    // Ground truth 10x10 pixels (1..=10), detection 10x20 pixels (1..=10 by 1..=20): IoU 100/200.
    assert_eq!(
        ssd_eval::devkit_iou(&[1.0, 1.0, 10.0, 20.0], &[1.0, 1.0, 10.0, 10.0]),
        0.5
    );
    let images = vec![("a".to_string(), vec![gt(1, [1.0, 1.0, 10.0, 10.0], false)])];
    let mut eval = VocEvaluator::new(classes(1), images).expect("ground truth");
    eval.add("a", &[det(1, 0.9, [1.0, 1.0, 10.0, 20.0])])
        .expect("add");
    let at_least = EvalConfig::default();
    let above = EvalConfig {
        rule: IouRule::Above,
        ..at_least
    };
    assert_eq!(
        eval.evaluate(&at_least).expect("evaluate").classes[0].true_positives,
        1
    );
    assert_eq!(
        eval.evaluate(&above).expect("evaluate").classes[0].true_positives,
        0
    );
}

/// An IoU threshold outside (0, 1] would match everything (0, NaN compares false) or nothing
/// (above 1): refused by name, by the library itself.
#[test]
fn iou_thresholds_out_of_range_are_errors() {
    let images = vec![("a".to_string(), vec![gt(1, [1.0, 1.0, 10.0, 10.0], false)])];
    let eval = VocEvaluator::new(classes(1), images).expect("ground truth");
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let config = EvalConfig {
            iou_threshold: bad,
            ..EvalConfig::default()
        };
        let err = eval.evaluate(&config).expect_err("out of range");
        assert_eq!(
            err.to_string(),
            format!("iou_threshold must be in (0, 1], got {bad}")
        );
    }
}

#[test]
fn bad_detections_are_errors() {
    let images = vec![("a".to_string(), vec![gt(1, [1.0, 1.0, 10.0, 10.0], false)])];
    let mut eval = VocEvaluator::new(classes(1), images).expect("ground truth");
    assert!(matches!(
        eval.add("zzz", &[det(1, 0.9, [1.0, 1.0, 10.0, 20.0])]),
        Err(EvalError::UnknownImage { .. })
    ));
    assert!(matches!(
        eval.add("a", &[det(2, 0.9, [1.0, 1.0, 10.0, 20.0])]),
        Err(EvalError::UnknownClass { label: 2, .. })
    ));
    assert!(matches!(
        eval.add("a", &[det(1, f64::NAN, [1.0, 1.0, 10.0, 20.0])]),
        Err(EvalError::NonFinite { .. })
    ));
    assert!(matches!(
        VocEvaluator::new(
            classes(1),
            vec![("a".into(), vec![gt(0, [1.0, 1.0, 2.0, 2.0], false)])]
        ),
        Err(EvalError::UnknownClass { label: 0, .. })
    ));
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-eval-{}-{tag}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

#[test]
fn results_files_round_trip_exactly() {
    let images = vec![
        (
            "000001".to_string(),
            vec![gt(1, [1.0, 1.0, 50.0, 50.0], false)],
        ),
        (
            "000002".to_string(),
            vec![gt(2, [3.0, 4.0, 30.0, 40.0], false)],
        ),
    ];
    let mut eval = VocEvaluator::new(classes(2), images).expect("ground truth");
    eval.add(
        "000001",
        &[
            det(1, 0.123_456_789_012_345, [1.1, 1.000_000_1, 49.9, 50.3]),
            det(2, 0.3, [1.0, 1.0, 5.0, 5.0]),
        ],
    )
    .expect("add");
    eval.add("000002", &[det(2, 0.7, [3.0, 4.0, 31.5, 40.0])])
        .expect("add");
    let dir = temp_dir("roundtrip");
    let files = write_results(&eval, &dir, "comp4", "test").expect("write");
    assert_eq!(files.len(), 2);
    assert!(files[0].ends_with("comp4_det_test_cat.txt"));
    let text = std::fs::read_to_string(&files[0]).expect("read");
    assert_eq!(text, "000001 0.123456789012345 1.1 1.0000001 49.9 50.3\n");

    let mut fresh = eval.clone();
    fresh.clear_detections();
    assert_eq!(
        read_results(&mut fresh, &dir, "test", MissingClass::Error).expect("read back"),
        3
    );
    for metric in [ApMetric::Voc07, ApMetric::Area] {
        let config = EvalConfig {
            metric,
            ..EvalConfig::default()
        };
        assert_eq!(
            fresh.evaluate(&config).expect("evaluate"),
            eval.evaluate(&config).expect("evaluate")
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn malformed_results_name_file_and_line() {
    let images = vec![(
        "000001".to_string(),
        vec![gt(1, [1.0, 1.0, 50.0, 50.0], false)],
    )];
    let eval = VocEvaluator::new(classes(1), images).expect("ground truth");
    let dir = temp_dir("malformed");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("comp3_det_test_cat.txt");
    let cases = [
        ("000001 0.9 1 1 50\n", "expected 6 fields"),
        ("000001 0.9 1 1 50 50 7\n", "more than 6"),
        ("\n000001 0.9 1 x 50 50\n", "field 4"),
        ("000001 nan 1 1 50 50\n", "field 2"),
    ];
    for (text, reason) in cases {
        std::fs::write(&file, text).expect("write");
        let err = read_results(&mut eval.clone(), &dir, "test", MissingClass::NoDetections)
            .expect_err("malformed");
        let line = if text.starts_with('\n') { 2 } else { 1 };
        assert!(
            matches!(&err, EvalError::MalformedLine { path, line: l, .. } if *path == file && *l == line),
            "{err}"
        );
        assert!(err.to_string().contains(reason), "{err}");
    }
    std::fs::write(&file, "000001 0.9 1 1 50 50\n000009 0.9 1 1 50 50\n").expect("write");
    let err = read_results(&mut eval.clone(), &dir, "test", MissingClass::NoDetections)
        .expect_err("unknown image");
    assert!(
        matches!(&err, EvalError::UnknownImage { line: Some(2), .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("comp3_det_test_cat.txt:2"),
        "{err}"
    );

    std::fs::write(dir.join("comp4_det_test_cat.txt"), "").expect("write");
    assert!(matches!(
        read_results(&mut eval.clone(), &dir, "test", MissingClass::NoDetections),
        Err(EvalError::AmbiguousResults { .. })
    ));
    assert!(matches!(
        read_results(&mut eval.clone(), &dir, "val", MissingClass::NoDetections),
        Err(EvalError::NoResults { .. })
    ));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_missing_or_miscased_class_file_and_duplicate_images_are_errors() {
    let images = vec![
        (
            "000001".to_string(),
            vec![gt(1, [1.0, 1.0, 50.0, 50.0], false)],
        ),
        (
            "000002".to_string(),
            vec![gt(2, [3.0, 4.0, 30.0, 40.0], false)],
        ),
    ];
    let mut eval = VocEvaluator::new(classes(2), images.clone()).expect("ground truth");
    eval.add("000001", &[det(1, 0.9, [1.0, 1.0, 50.0, 50.0])])
        .expect("add");
    let dir = temp_dir("missing");
    let files = write_results(&eval, &dir, "comp4", "test").expect("write");
    // The second class's file is gone: an error naming it, unless asked otherwise.
    std::fs::remove_file(&files[1]).expect("remove");
    let err = read_results(&mut eval.clone(), &dir, "test", MissingClass::Error)
        .expect_err("a missing class file");
    assert!(
        matches!(&err, EvalError::MissingResults { class, other_case: None, .. } if class == "dog"),
        "{err}"
    );
    assert_eq!(
        read_results(&mut eval.clone(), &dir, "test", MissingClass::NoDetections).expect("empty"),
        1
    );
    // Named in another case: still missing, and the error says which file it found.
    std::fs::write(dir.join("comp4_det_test_DOG.txt"), "").expect("write");
    let err = read_results(&mut eval.clone(), &dir, "test", MissingClass::Error)
        .expect_err("a miscased file");
    assert!(
        matches!(&err, EvalError::MissingResults { other_case: Some(n), .. } if n == "comp4_det_test_DOG.txt"),
        "{err}"
    );
    // An image listed twice would count its objects twice.
    let mut twice = images.clone();
    twice.push(images[0].clone());
    assert!(matches!(
        VocEvaluator::new(classes(2), twice),
        Err(EvalError::DuplicateImage(id)) if id == "000001"
    ));
    std::fs::remove_dir_all(dir).ok();
}
