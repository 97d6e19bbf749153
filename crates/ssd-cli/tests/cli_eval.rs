//! `ssd eval` on result files, run as the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-cli-eval-{}-{tag}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// A two-image VOC root with a class list of two classes (annotations only: eval needs no images).
fn voc_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("Annotations")).expect("mkdir");
    std::fs::create_dir_all(dir.join("ImageSets/Main")).expect("mkdir");
    std::fs::write(dir.join("ImageSets/Main/test.txt"), "000001\n000002\n").expect("write");
    std::fs::write(dir.join("classes.txt"), "cat\ndog\n").expect("write");
    let object = |name: &str, b: [u32; 4], difficult: u8| {
        format!(
            "<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
            b[0], b[1], b[2], b[3]
        )
    };
    let annotation = |objects: String| {
        format!(
            "<annotation><size><width>100</width><height>100</height><depth>3</depth></size>{objects}</annotation>"
        )
    };
    std::fs::write(
        dir.join("Annotations/000001.xml"),
        annotation(object("cat", [1, 1, 50, 50], 0) + &object("dog", [60, 60, 90, 90], 0)),
    )
    .expect("write");
    std::fs::write(
        dir.join("Annotations/000002.xml"),
        annotation(object("cat", [10, 10, 40, 40], 0) + &object("dog", [5, 5, 20, 20], 1)),
    )
    .expect("write");
}

fn ssd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ssd"))
        .args(args)
        .output()
        .expect("run ssd")
}

#[test]
fn evaluates_result_files_as_table_and_json() {
    let dir = temp_dir("ok");
    voc_root(&dir);
    let results = dir.join("results");
    std::fs::create_dir_all(&results).expect("mkdir");
    // Cats: one hit per image, plus a duplicate in 000001 ranked last. Dogs: one hit, one miss.
    std::fs::write(
        results.join("comp4_det_test_cat.txt"),
        "000001 0.9 1 1 50 50\n000002 0.8 10 10 40 40\n000001 0.1 2 2 50 50\n",
    )
    .expect("write");
    std::fs::write(
        results.join("comp4_det_test_dog.txt"),
        "000001 0.3 1 1 20 20\n000001 0.7 60 60 90 90\n",
    )
    .expect("write");
    let (root, res, classes) = (
        dir.to_str().expect("utf8"),
        results.to_str().expect("utf8"),
        dir.join("classes.txt"),
    );
    let classes = classes.to_str().expect("utf8");
    let out = ssd(&[
        "eval",
        "--dataroot",
        root,
        "--detections",
        res,
        "--classes",
        classes,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    // Cat: recall 0.5, 1, 1 at precision 1, 1, 2/3 -> AP 1. Dog: hit first -> AP 1 (the miss
    // ranks after it). mAP 1.
    assert!(
        (json["ap"]["cat"].as_f64().expect("cat") - 1.0).abs() < 1e-12,
        "{json}"
    );
    assert!(
        (json["ap"]["dog"].as_f64().expect("dog") - 1.0).abs() < 1e-12,
        "{json}"
    );
    assert_eq!(json["metric"], "voc07");

    let out = ssd(&[
        "eval",
        "--dataroot",
        root,
        "--detections",
        res,
        "--classes",
        classes,
        "--metric",
        "area",
    ]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("cat") && table.contains("mAP") && table.contains("area"),
        "{table}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// The ground truth is scored as its file gives it, as the devkit reads it: a box that runs out
/// of its image keeps its full extent, and an inverted box is a ground truth no detection can
/// match (what training clips or leaves out is training's business).
#[test]
fn the_ground_truth_is_scored_as_given() {
    let dir = temp_dir("as-given");
    std::fs::create_dir_all(dir.join("Annotations")).expect("mkdir");
    std::fs::create_dir_all(dir.join("ImageSets/Main")).expect("mkdir");
    std::fs::write(dir.join("ImageSets/Main/test.txt"), "000001\n").expect("write");
    std::fs::write(dir.join("classes.txt"), "cat\ndog\n").expect("write");
    std::fs::write(
        dir.join("Annotations/000001.xml"),
        "<annotation><size><width>100</width><height>100</height></size>\
         <object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>300</xmax><ymax>50</ymax></bndbox></object>\
         <object><name>dog</name><bndbox><xmin>30</xmin><ymin>10</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>\
         </annotation>",
    )
    .expect("write");
    let results = dir.join("results");
    std::fs::create_dir_all(&results).expect("mkdir");
    // On the box as given (IoU 1); against the box clipped to the image it would be IoU 1/3.
    std::fs::write(
        results.join("comp4_det_test_cat.txt"),
        "000001 0.9 1 1 300 50\n",
    )
    .expect("write");
    std::fs::write(results.join("comp4_det_test_dog.txt"), "").expect("write");
    let out = ssd(&[
        "eval",
        "--dataroot",
        dir.to_str().expect("utf8"),
        "--detections",
        results.to_str().expect("utf8"),
        "--classes",
        dir.join("classes.txt").to_str().expect("utf8"),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    // Cat: AP 1. Dog: one ground truth, no detection: AP 0 (it counts, as in VOCevaldet.m).
    for (key, want) in [("cat", 1.0), ("dog", 0.0)] {
        let ap = json["ap"][key].as_f64().expect("a number");
        assert!((ap - want).abs() < 1e-12, "{key}: {json}");
    }
    let map = json["map"].as_f64().expect("a number");
    assert!((map - 0.5).abs() < 1e-12, "{json}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_input_is_one_line_naming_the_file_and_a_failure_exit() {
    let dir = temp_dir("bad");
    voc_root(&dir);
    let results = dir.join("results");
    std::fs::create_dir_all(&results).expect("mkdir");
    std::fs::write(
        results.join("comp4_det_test_cat.txt"),
        "000001 0.9 1 1 50 50\n000001 0.9 1 1 50\n",
    )
    .expect("write");
    let (root, res) = (dir.to_str().expect("utf8"), results.to_str().expect("utf8"));
    let classes = dir.join("classes.txt");
    let out = ssd(&[
        "eval",
        "--dataroot",
        root,
        "--detections",
        res,
        "--classes",
        classes.to_str().expect("utf8"),
    ]);
    // No file for the second class: named, with the flag that would accept it.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("_det_test_dog.txt") && err.contains("--missing-as-empty"),
        "{err}"
    );
    let out = ssd(&[
        "eval",
        "--dataroot",
        root,
        "--detections",
        res,
        "--classes",
        classes.to_str().expect("utf8"),
        "--missing-as-empty",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("comp4_det_test_cat.txt:2"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    // A missing image set names the file.
    let out = ssd(&[
        "eval",
        "--dataroot",
        root,
        "--datanames",
        "val",
        "--detections",
        res,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("val.txt") && err.contains("image set not found"),
        "{err}"
    );

    // A bad flag value is a usage error from clap (exit code 2).
    let out = ssd(&[
        "eval",
        "--dataroot",
        root,
        "--detections",
        res,
        "--metric",
        "map",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metric"));
    std::fs::remove_dir_all(dir).ok();
}

fn coco_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/coco")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn scores_a_coco_results_file_with_either_metric() {
    let gt = coco_fixture("gt.json");
    let results = coco_fixture("results.json");
    let out = ssd(&[
        "eval",
        "--dataroot",
        &gt,
        "--detections",
        &results,
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(json["metric"], "coco");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(coco_fixture("expected.json")).expect("expected"),
    )
    .expect("expected JSON");
    let ap = json["coco"]["AP"].as_f64().expect("AP");
    assert!((ap - expected["stats"][0].as_f64().expect("AP")).abs() < 1e-12);
    assert_eq!(json["map"], json["coco"]["AP"]);
    assert_eq!(json["coco"].as_object().map(|o| o.len()), Some(12));
    // Category 90 has no ground truth: null, named by the file's own name.
    assert!(json["ap"]["class 90"].is_null());
    // The table: pycocotools' twelve lines, then per category.
    let plots = temp_dir("coco-plots");
    let out = ssd(&[
        "eval",
        "--dataroot",
        &gt,
        "--detections",
        &results,
        "--plot",
        &plots.display().to_string(),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    for file in ["pr_curves.png", "ap_by_iou.png"] {
        let size = image::image_dimensions(plots.join(file)).expect("a PNG");
        assert_eq!(size, (900, 500), "{file}");
    }
    std::fs::remove_dir_all(&plots).ok();
    assert!(
        table.contains("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]")
    );
    assert!(table.contains("class 41"), "{table}");
    // The VOC metric on COCO data.
    let out = ssd(&[
        "eval",
        "--dataroot",
        &gt,
        "--detections",
        &results,
        "--metric",
        "voc07",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("JSON");
    assert_eq!(json["metric"], "voc07");
    // A bad entry: one line naming the file and the entry.
    let dir = temp_dir("coco-bad");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"image_id": 1000, "category_id": 3, "bbox": [1, 2], "score": 1}]"#,
    )
    .expect("write");
    let out = ssd(&[
        "eval",
        "--dataroot",
        &gt,
        "--detections",
        &bad.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("bad.json") && stderr.contains("[0].bbox"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
