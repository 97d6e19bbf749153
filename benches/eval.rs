//! Evaluation benches (ssd-eval): a VOC07-test-sized evaluation — 4952 images, 20 classes, up to
//! 200 detections per image — from in-memory detections and from devkit result files.
//!
//! `cargo bench --bench eval` (or `bash benches/peers/compare-eval.sh`, which also runs the Python
//! peer on the same files). The set is generated once into `$SSD_BENCH_EVAL_DATA` (default:
//! `<temp dir>/ssd-bench-voc07-eval`): `Annotations/`, `ImageSets/Main/test.txt` and
//! `results/comp4_det_test_<class>.txt`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use ssd_data::{ClassList, DetectionDataset, SampleRng, VOC_CLASSES};
use ssd_eval::{Detection, EvalConfig, MissingClass, read_results, write_results};

const IMAGES: usize = 4952;

fn bench_root() -> PathBuf {
    std::env::var_os("SSD_BENCH_EVAL_DATA").map_or_else(
        || std::env::temp_dir().join("ssd-bench-voc07-eval"),
        PathBuf::from,
    )
}

/// Ground truth like VOC07 test (about 3 objects per image, some difficult) and detections like a
/// detector's after NMS: jittered copies of the objects plus clutter, 20 to 200 per image.
fn generate(root: &Path) {
    let mut rng = SampleRng::new(2007);
    let annotations = root.join("Annotations");
    let sets = root.join("ImageSets").join("Main");
    std::fs::create_dir_all(&annotations).expect("mkdir");
    std::fs::create_dir_all(&sets).expect("mkdir");
    let mut ids = String::new();
    let mut all: Vec<(String, Vec<Detection>)> = Vec::new();
    for i in 0..IMAGES {
        let id = format!("{:06}", i + 1);
        let _ = writeln!(ids, "{id}");
        let (w, h) = (500.0, 375.0);
        let mut xml = format!(
            "<annotation><filename>{id}.jpg</filename><size><width>500</width><height>375</height><depth>3</depth></size>"
        );
        let mut dets = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let label = 1 + rng.below(20);
            let x0 = rng.uniform(1.0, w - 60.0).floor();
            let y0 = rng.uniform(1.0, h - 60.0).floor();
            let x1 = (x0 + rng.uniform(10.0, 300.0)).min(w).floor();
            let y1 = (y0 + rng.uniform(10.0, 300.0)).min(h).floor();
            let difficult = u8::from(rng.chance(0.1));
            let _ = write!(
                xml,
                "<object><name>{}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>",
                VOC_CLASSES[label - 1]
            );
            for _ in 0..1 + rng.below(3) {
                let j = |rng: &mut SampleRng| rng.uniform(-15.0, 15.0);
                dets.push(Detection {
                    label,
                    score: rng.unit(),
                    bbox: [
                        x0 + j(&mut rng),
                        y0 + j(&mut rng),
                        x1 + j(&mut rng),
                        y1 + j(&mut rng),
                    ],
                });
            }
        }
        let clutter = 20 + rng.below(180 - dets.len().min(180));
        for _ in 0..clutter {
            let x0 = rng.uniform(1.0, w - 20.0);
            let y0 = rng.uniform(1.0, h - 20.0);
            dets.push(Detection {
                label: 1 + rng.below(20),
                score: rng.unit() * 0.5,
                bbox: [
                    x0,
                    y0,
                    (x0 + rng.uniform(5.0, 200.0)).min(w),
                    (y0 + rng.uniform(5.0, 200.0)).min(h),
                ],
            });
        }
        xml.push_str("</annotation>\n");
        std::fs::write(annotations.join(format!("{id}.xml")), xml).expect("write xml");
        all.push((id, dets));
    }
    std::fs::write(sets.join("test.txt"), ids).expect("write set");
    let voc = DetectionDataset::open_annotations(&[root.to_owned()], "test", ClassList::voc())
        .expect("open");
    let mut evaluator = ssd_evaluation::voc_ground_truth(&voc).expect("ground truth");
    for (id, dets) in &all {
        evaluator.add(id, dets).expect("add");
    }
    write_results(&evaluator, &root.join("results"), "comp4", "test").expect("write results");
}

fn eval(c: &mut Criterion) {
    let root = bench_root();
    if !root
        .join("results")
        .join("comp4_det_test_tvmonitor.txt")
        .exists()
    {
        generate(&root);
    }
    let voc =
        DetectionDataset::open_annotations(std::slice::from_ref(&root), "test", ClassList::voc())
            .expect("open");
    let empty = ssd_evaluation::voc_ground_truth(&voc).expect("ground truth");
    let mut loaded = empty.clone();
    let n = read_results(
        &mut loaded,
        &root.join("results"),
        "test",
        MissingClass::NoDetections,
    )
    .expect("read");
    let config = EvalConfig::default();
    // Printed so that the compare script shows both sides' mAP on the same files.
    let map = loaded
        .evaluate(&config)
        .expect("evaluate")
        .map
        .unwrap_or(f64::NAN);
    eprintln!("{} images, {n} detections, VOC07 mAP {map}", voc.len());

    let mut group = c.benchmark_group("eval_voc07_test_size");
    group.sample_size(20);
    group.bench_function("in_memory", |b| {
        b.iter(|| black_box(loaded.evaluate(&config)))
    });
    group.bench_function("from_result_files", |b| {
        b.iter(|| {
            let mut e = empty.clone();
            read_results(
                &mut e,
                &root.join("results"),
                "test",
                MissingClass::NoDetections,
            )
            .expect("read");
            black_box(e.evaluate(&config))
        })
    });
    group.finish();
}

criterion_group!(benches, eval);
criterion_main!(benches);
