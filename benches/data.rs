//! Data pipeline benches (ssd-data): per image, on one core, for a VOC-sized (500x375) JPEG:
//! decode; decode + SSD300 training augmentation + prior matching (the training loader's work);
//! decode + evaluation transform.
//!
//! `cargo bench --bench data` (or `bash benches/peers/compare-data.sh`, which also runs the
//! Python/OpenCV peer on the same files). The JPEGs are the synthetic dataset, written once to
//! `$SSD_BENCH_DATA` (default: `<temp dir>/ssd-bench-voc500x375`).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use ssd_core::PriorConfig;
use ssd_data::{
    Augment, ClassList, DetectionDataset, SampleRng, SyntheticConfig, TargetEncoder, load_rgb,
    write_synthetic,
};

/// Images the benches cycle through (each iteration is one image).
const IMAGES: usize = 32;

fn bench_root() -> PathBuf {
    std::env::var_os("SSD_BENCH_DATA").map_or_else(
        || std::env::temp_dir().join("ssd-bench-voc500x375"),
        PathBuf::from,
    )
}

fn dataset() -> DetectionDataset {
    let root = bench_root();
    let config = SyntheticConfig {
        seed: 2016,
        train_images: IMAGES,
        test_images: 1,
        width: [500, 500],
        height: [375, 375],
        ..SyntheticConfig::default()
    };
    if !root.join("classes.txt").exists() {
        write_synthetic(&root, &config).expect("write the bench dataset");
    }
    let classes = ClassList::from_file(&root.join("classes.txt")).expect("class list");
    DetectionDataset::open(&[root], "trainval", classes).expect("open the bench dataset")
}

fn data(c: &mut Criterion) {
    let voc = dataset();
    let paths: Vec<PathBuf> = (0..voc.len()).map(|i| voc.image_path(i)).collect();
    let truth: Vec<_> = (0..voc.len()).map(|i| voc.ground_truth(i, true)).collect();
    let train = Augment::ssd_train(300);
    let eval = Augment::eval(300);
    let encoder = TargetEncoder::new(&PriorConfig::ssd300_voc(), 0.5).expect("priors");

    let mut group = c.benchmark_group("data_per_image_500x375");
    let mut i = 0usize;
    group.bench_function("decode", |b| {
        b.iter(|| {
            i += 1;
            black_box(load_rgb(&paths[i % IMAGES]).expect("decode"))
        })
    });
    let mut i = 0usize;
    group.bench_function("decode_augment_encode_ssd300", |b| {
        b.iter(|| {
            i += 1;
            let k = i % IMAGES;
            let image = load_rgb(&paths[k]).expect("decode");
            let (boxes, labels) = &truth[k];
            let mut rng = SampleRng::for_sample(1, i as u64, k as u64);
            let out = train.apply(image, boxes, labels, &mut rng);
            let targets = encoder.encode(&out.boxes, &out.labels).expect("encode");
            black_box((out.pixels, targets))
        })
    });
    let mut i = 0usize;
    group.bench_function("decode_eval_transform_ssd300", |b| {
        b.iter(|| {
            i += 1;
            let k = i % IMAGES;
            let image = load_rgb(&paths[k]).expect("decode");
            let mut rng = SampleRng::new(0);
            black_box(eval.apply(image, &[], &[], &mut rng).pixels)
        })
    });
    // The parts, to see where the time goes.
    let image = load_rgb(&paths[0]).expect("decode");
    let photometric = ssd_data::PhotometricPlan {
        brightness: Some(10.0),
        contrast: Some(1.2),
        contrast_first: true,
        saturation: Some(1.3),
        hue: Some(9.0),
    };
    group.bench_function("photometric_all_steps", |b| {
        b.iter(|| {
            let mut copy = image.clone();
            photometric.apply(&mut copy);
            black_box(copy)
        })
    });
    let (boxes, labels) = &truth[0];
    group.bench_function("encode_ssd300", |b| {
        b.iter(|| black_box(encoder.encode(boxes, labels).expect("encode")))
    });
    group.finish();
}

criterion_group!(benches, data);
criterion_main!(benches);
