//! The COCO metric against pycocotools: `tests/fixtures/coco/` holds a ground-truth file, a
//! results file and pycocotools' numbers for them (`tools/make_coco_fixtures.py`: crowd regions,
//! `area` unlike w * h, ids out of order with gaps, a category without ground truth and one
//! without detections, more than 100 detections for one image and category, score ties, areas
//! at the range bounds, IoU exactly 0.5). The files go through the path `ssd eval` takes: the
//! COCO reader of `ssd-data`, the results reader, the evaluation.

use std::path::PathBuf;
use std::sync::Arc;

use ssd_data::{DatasetFormat, DetectionDataset};
use ssd_eval::{Metric, Report};
use ssd_evaluation::DatasetDetections;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/coco")
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected JSON")
}

fn dataset() -> Arc<DetectionDataset> {
    let gt = fixtures().join("gt.json");
    let dataset = DetectionDataset::open_annotations(&[gt], "unused", None).expect("gt.json");
    assert_eq!(dataset.format(), DatasetFormat::Coco);
    Arc::new(dataset)
}

#[test]
fn the_twelve_numbers_and_per_category_ap_are_pycocotools() {
    let (found, count) =
        DatasetDetections::read_coco_results(dataset(), &fixtures().join("results.json"))
            .expect("results.json");
    assert_eq!(count, found.num_detections());
    let Report::Coco(report) = found.evaluate(&Metric::Coco).expect("evaluation") else {
        panic!("a COCO report");
    };
    let expected = expected();
    let stats = expected["stats"].as_array().expect("stats");
    for (i, (ours, theirs)) in report.stats.iter().zip(stats).enumerate() {
        let theirs = theirs.as_f64().expect("a number");
        assert!(
            (ours - theirs).abs() <= 1e-12,
            "{}: ours {ours}, pycocotools {theirs}",
            ssd_eval::COCO_STATS[i]
        );
    }
    let per_category = expected["per_category_ap"]
        .as_object()
        .expect("per category");
    assert_eq!(report.classes.len(), per_category.len());
    for class in &report.classes {
        let theirs = &per_category[&class.category_id.to_string()];
        match (class.ap, theirs.as_f64()) {
            (Some(ours), Some(theirs)) => assert!(
                (ours - theirs).abs() <= 1e-12,
                "category {}: ours {ours}, pycocotools {theirs}",
                class.category_id
            ),
            (None, None) => {}
            (ours, _) => panic!(
                "category {}: ours {ours:?}, pycocotools {theirs}",
                class.category_id
            ),
        }
    }
    // Category 90 has no ground truth, 41 no detections: both are in the fixture.
    assert!(
        report
            .classes
            .iter()
            .any(|c| c.category_id == 90 && c.ap.is_none())
    );
    assert!(
        report
            .classes
            .iter()
            .any(|c| c.category_id == 41 && c.ap == Some(0.0))
    );
}

#[test]
fn results_written_and_read_back_score_the_same() {
    let dataset = dataset();
    let (found, _) = DatasetDetections::read_coco_results(
        Arc::clone(&dataset),
        &fixtures().join("results.json"),
    )
    .expect("results.json");
    let dir = std::env::temp_dir().join(format!("ssd-coco-roundtrip-{}", std::process::id()));
    let file = dir.join("detections.json");
    ssd_eval::write_coco_results(&file, &found.coco_results()).expect("written");
    let (again, _) = DatasetDetections::read_coco_results(dataset, &file).expect("read back");
    assert_eq!(
        found.evaluate(&Metric::Coco).expect("first"),
        again.evaluate(&Metric::Coco).expect("second")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_results_name_the_entry() {
    let dir = std::env::temp_dir().join(format!("ssd-coco-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let cases = [
        (
            r#"[{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}]"#,
            "[0].image_id",
        ),
        (
            r#"[{"image_id": 1000, "category_id": 4, "bbox": [0, 0, 1, 1], "score": 0.5}]"#,
            "[0].category_id",
        ),
        (
            r#"[{"image_id": 1000, "category_id": 3, "bbox": [0, 0, 1], "score": 0.5}]"#,
            "[0].bbox",
        ),
        (
            r#"[{"image_id": 1000, "category_id": 3, "bbox": [0, 0, 1, 1]}]"#,
            "[0]",
        ),
        (r#"{"image_id": 1000}"#, ""),
    ];
    for (i, (text, json_path)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.json"));
        std::fs::write(&file, text).expect("written");
        let err = DatasetDetections::read_coco_results(dataset(), &file).expect_err(text);
        let message = err.to_string();
        assert!(message.contains(&file.display().to_string()), "{message}");
        assert!(message.contains(json_path), "case {i}: {message}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_voc_metric_runs_on_coco_data_and_the_coco_metric_on_voc_data() {
    let (found, _) =
        DatasetDetections::read_coco_results(dataset(), &fixtures().join("results.json"))
            .expect("results.json");
    let voc = found
        .evaluate(&Metric::default())
        .expect("VOC07 on COCO data");
    assert!(voc.headline().is_some_and(|m| m > 0.0 && m <= 1.0));
    // VOC data: the synthetic set, its own ground truth as detections scores 1 on both metrics.
    let root = std::env::temp_dir().join(format!("ssd-coco-on-voc-{}", std::process::id()));
    ssd_data::write_synthetic(&root, &ssd_data::SyntheticConfig::large_objects(2, 6))
        .expect("synthetic");
    let classes = ssd_data::ClassList::from_file(&root.join("classes.txt")).expect("classes");
    let voc_data = Arc::new(
        DetectionDataset::open(std::slice::from_ref(&root), "test", classes).expect("test"),
    );
    let mut perfect = DatasetDetections::new(Arc::clone(&voc_data));
    for i in 0..voc_data.len() {
        let boxes: Vec<_> = voc_data
            .annotation(i)
            .objects
            .iter()
            .map(|o| {
                let b = o.bbox;
                ssd_evaluation::ScoredBox::from_corners(
                    o.label,
                    1.0,
                    [b.xmin, b.ymin, b.xmax, b.ymax],
                )
            })
            .collect();
        perfect.add(i, &boxes);
    }
    let coco = perfect.evaluate(&Metric::Coco).expect("COCO on VOC data");
    assert_eq!(coco.headline(), Some(1.0));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_non_finite_detection_is_refused_and_nothing_is_written() {
    let dir = std::env::temp_dir().join(format!("ssd-coco-nan-{}", std::process::id()));
    let file = dir.join("detections.json");
    let nan = ssd_eval::CocoDetection {
        image_id: 1000,
        category_id: 3,
        bbox: [0.0, 0.0, f64::NAN, 1.0],
        score: 0.5,
    };
    let err = ssd_eval::write_coco_results(&file, &[nan]).expect_err("NaN box");
    assert!(err.to_string().contains("not finite"), "{err}");
    assert!(!file.exists());
    std::fs::remove_dir_all(&dir).ok();
}
