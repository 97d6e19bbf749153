//! The VOC reader, the synthetic writer and the batch prefetcher together.

use std::path::PathBuf;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::Device;
use ssd_core::PriorConfig;
use ssd_data::{
    Augment, BatchPlan, ClassList, DataError, DetectionDataset, Prefetcher, SYNTHETIC_CLASSES,
    SsdBatcher, SsdDataset, SyntheticConfig, TargetEncoder, write_synthetic,
};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-data-{}-{tag}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn small_config(seed: u64) -> SyntheticConfig {
    SyntheticConfig {
        seed,
        train_images: 12,
        test_images: 4,
        width: [120, 200],
        height: [100, 160],
        ..SyntheticConfig::default()
    }
}

/// Priors for a 96-pixel input (a small network's), to keep the test quick.
fn small_priors() -> PriorConfig {
    PriorConfig {
        image_size: 96,
        feature_maps: vec![12, 6, 3, 1],
        steps: vec![8.0, 16.0, 32.0, 96.0],
        min_sizes: vec![10.0, 25.0, 45.0, 70.0],
        max_sizes: vec![25.0, 45.0, 70.0, 96.0],
        aspect_ratios: vec![vec![2.0], vec![2.0, 3.0], vec![2.0, 3.0], vec![2.0]],
        clip: ssd_core::PriorClip::All,
    }
}

#[test]
fn synthetic_data_reads_back_as_voc_and_is_deterministic() {
    let root = temp_dir("synthetic");
    let summary = write_synthetic(&root, &small_config(3)).expect("write");
    assert_eq!(summary.images, 16);
    assert!(summary.objects >= 16 && summary.objects <= 96);
    let classes = ClassList::from_file(&summary.class_file).expect("class file");
    assert_eq!(
        classes.names(),
        SYNTHETIC_CLASSES.map(String::from).as_slice()
    );

    let train = DetectionDataset::open(std::slice::from_ref(&root), "trainval", classes.clone())
        .expect("trainval");
    let test = DetectionDataset::open(std::slice::from_ref(&root), "test", classes).expect("test");
    assert_eq!((train.len(), test.len()), (12, 4));
    let report = train.report();
    assert_eq!(report.dropped, 0);
    assert_eq!(report.images_without_objects, 0);
    assert_eq!(report.objects + test.report().objects, summary.objects);
    for i in 0..train.len() {
        let loaded = train.load(i).expect("image decodes");
        assert_eq!(loaded.image.width(), loaded.annotation.width);
    }

    // The same seed writes the same bytes; another seed does not.
    let again = temp_dir("synthetic-again");
    write_synthetic(&again, &small_config(3)).expect("write again");
    let other = temp_dir("synthetic-other");
    write_synthetic(&other, &small_config(4)).expect("write other");
    let file = |r: &PathBuf| std::fs::read(r.join("Annotations/000005.xml")).expect("xml");
    let jpeg = |r: &PathBuf| std::fs::read(r.join("JPEGImages/000005.jpg")).expect("jpg");
    assert_eq!(file(&root), file(&again));
    assert_eq!(jpeg(&root), jpeg(&again));
    assert_ne!(jpeg(&root), jpeg(&other));
    for dir in [root, again, other] {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn a_variety_of_objects_is_written() {
    let root = temp_dir("variety");
    let config = SyntheticConfig {
        train_images: 150,
        test_images: 0,
        ..small_config(11)
    };
    let summary = write_synthetic(&root, &config).expect("write");
    assert!(
        summary.truncated > 0 && summary.difficult > 0,
        "{summary:?}"
    );
    let classes = ClassList::from_file(&summary.class_file).expect("classes");
    let voc =
        DetectionDataset::open(std::slice::from_ref(&root), "trainval", classes).expect("open");
    let mut per_class = [0usize; 5];
    let mut per_image = std::collections::BTreeSet::new();
    let mut smallest = f32::MAX;
    for a in voc.annotations() {
        per_image.insert(a.objects.len());
        for o in &a.objects {
            per_class[o.label - 1] += 1;
            smallest = smallest.min((o.bbox.xmax - o.bbox.xmin).min(o.bbox.ymax - o.bbox.ymin));
        }
    }
    assert!(per_class.iter().all(|&n| n > 20), "{per_class:?}");
    assert!(
        per_image.contains(&1) && per_image.contains(&6),
        "{per_image:?}"
    );
    assert!(smallest < 10.0, "smallest object side {smallest}");
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn missing_files_and_size_mismatch_are_errors_naming_the_file() {
    let root = temp_dir("broken");
    let summary = write_synthetic(&root, &small_config(5)).expect("write");
    let classes = ClassList::from_file(&summary.class_file).expect("classes");

    std::fs::remove_file(root.join("JPEGImages/000002.jpg")).expect("remove");
    let err = DetectionDataset::open(std::slice::from_ref(&root), "trainval", classes.clone())
        .expect_err("must fail");
    assert!(
        matches!(&err, DataError::MissingImage { path } if path.ends_with("000002.jpg")),
        "{err}"
    );

    std::fs::remove_file(root.join("Annotations/000001.xml")).expect("remove");
    let err = DetectionDataset::open(std::slice::from_ref(&root), "trainval", classes.clone())
        .expect_err("must fail");
    assert!(
        matches!(&err, DataError::MissingAnnotation { path } if path.ends_with("000001.xml")),
        "{err}"
    );

    // The test split is intact; shrink one image so it disagrees with its annotation.
    let test =
        DetectionDataset::open(std::slice::from_ref(&root), "test", classes).expect("test split");
    test.check_images().expect("intact images pass the check");
    let path = test.image_path(0);
    image::RgbImage::new(10, 10).save(&path).expect("save");
    let err = test.load(0).expect_err("must fail");
    assert!(
        matches!(&err, DataError::SizeMismatch { image, .. } if *image == path),
        "{err}"
    );
    assert!(err.to_string().contains("Annotations"), "{err}");
    // The check at the start finds it without decoding, and a truncated image too.
    let err = test.check_images().expect_err("a mis-sized image");
    assert!(
        matches!(&err, DataError::SizeMismatch { image, .. } if *image == path),
        "{err}"
    );
    let last = test.image_path(test.len() - 1);
    let bytes = std::fs::read(&last).expect("read");
    std::fs::write(&last, &bytes[..bytes.len() / 2]).expect("truncate");
    let annotation = test.annotation(0);
    image::RgbImage::new(annotation.width, annotation.height)
        .save(&path)
        .expect("restore the size");
    let err = test.check_images().expect_err("a truncated image");
    assert!(
        matches!(&err, DataError::UnreadableImage { path, .. } if *path == last),
        "{err}"
    );
    std::fs::remove_dir_all(root).ok();
}

/// A decompression bomb: a small PNG whose header (and annotation) claim 100,000 x 100,000
/// pixels. The start-up check applies the decoder's limits, so it is refused there, naming the
/// file, before a run could start training on it.
#[test]
fn a_decompression_bomb_is_refused_by_the_start_up_check() {
    let root = temp_dir("bomb");
    let summary = write_synthetic(&root, &small_config(9)).expect("write");
    let classes = ClassList::from_file(&summary.class_file).expect("classes");
    let test = DetectionDataset::open(std::slice::from_ref(&root), "test", classes.clone())
        .expect("test split");
    let id = test.image_id(0).to_owned();
    let side: u32 = 100_000;
    let png = ssd_data::png_claiming(side, side);
    let image = root.join(format!("JPEGImages/{id}.jpg"));
    std::fs::write(&image, &png).expect("bomb");
    let xml = root.join(format!("Annotations/{id}.xml"));
    let text = std::fs::read_to_string(&xml).expect("annotation");
    let a = test.annotation(0);
    let text = text
        .replace(
            &format!("<width>{}</width>", a.width),
            &format!("<width>{side}</width>"),
        )
        .replace(
            &format!("<height>{}</height>", a.height),
            &format!("<height>{side}</height>"),
        );
    std::fs::write(&xml, text).expect("write annotation");
    let test =
        DetectionDataset::open(std::slice::from_ref(&root), "test", classes).expect("reopen");
    assert_eq!(
        test.annotation(0).width,
        side,
        "the annotation agrees with the header"
    );
    let err = test.check_images().expect_err("a bomb");
    assert!(
        matches!(&err, DataError::ImageTooLarge { path, .. } if *path == image),
        "{err}"
    );
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn the_prefetcher_gives_batches_of_the_right_shapes_with_positives() {
    let root = temp_dir("loader");
    let summary = write_synthetic(&root, &small_config(7)).expect("write");
    let classes = ClassList::from_file(&summary.class_file).expect("classes");
    let voc = Arc::new(
        DetectionDataset::open(std::slice::from_ref(&root), "trainval", classes).expect("open"),
    );
    let priors = small_priors();
    let encoder = TargetEncoder::new(&priors, 0.5).expect("priors");
    let p = encoder.num_priors();
    let dataset = SsdDataset::train(voc.clone(), Augment::ssd_train(96), encoder, true, 1);
    let plan = BatchPlan {
        len: voc.len(),
        batch_size: 5,
        shuffle: Some(1),
        keep_partial: true,
    };
    assert_eq!(plan.batches_per_epoch(), 3);
    let device = Device::flex();
    let mut seen = Vec::new();
    let mut items_seen = Vec::new();
    // Two epochs.
    for next in Prefetcher::new(dataset.clone(), plan.clone(), 0, 6, 2) {
        let (k, epoch, items) = next.expect("batch");
        assert_eq!(epoch, k / 3);
        items_seen.push(items.clone());
        let batch = SsdBatcher.batch(items, &device);
        let n = batch.image_ids.len();
        assert!(n == 5 || n == 2 || n == 3, "batch of {n}");
        assert_eq!(batch.images.dims(), [n, 3, 96, 96]);
        let labels = batch.labels.expect("training batch has labels");
        let locations = batch.locations.expect("training batch has locations");
        assert_eq!(labels.dims(), [n, p]);
        assert_eq!(locations.dims(), [n, p, 4]);
        let labels = labels
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .expect("ints");
        for (k, &index) in batch.indices.iter().enumerate() {
            let row = &labels[k * p..(k + 1) * p];
            assert!(row.iter().all(|&l| (0..=5).contains(&l)));
            if !voc.annotation(index).objects.is_empty() {
                assert!(
                    row.iter().any(|&l| l > 0),
                    "image {index} has objects but no positive prior"
                );
            }
            assert_eq!(
                batch.original_sizes[k],
                [voc.annotation(index).width, voc.annotation(index).height]
            );
        }
        let values = locations.into_data().try_to_vec::<f32>().expect("floats");
        assert!(values.iter().all(|v| v.is_finite()));
        seen.extend(batch.indices);
    }
    seen.sort_unstable();
    let expected: Vec<usize> = (0..12).flat_map(|i| [i, i]).collect();
    assert_eq!(seen, expected, "each image once per epoch");
    // Batch k depends on k alone: other worker counts, or a start in the middle, give the same.
    let three: Vec<_> = Prefetcher::new(dataset.clone(), plan.clone(), 0, 6, 3)
        .map(|b| b.expect("batch").2)
        .collect();
    assert_eq!(three, items_seen);
    let tail: Vec<_> = Prefetcher::new(dataset, plan, 4, 6, 1)
        .map(|b| b.expect("batch").2)
        .collect();
    assert_eq!(tail, items_seen[4..]);

    // Evaluation items: no targets, no randomness.
    let eval = SsdDataset::eval(voc, Augment::eval(96));
    let a = eval.item(3).expect("item");
    eval.set_epoch(5);
    assert_eq!(eval.item(3).expect("item"), a);
    assert!(a.targets.is_none());
    std::fs::remove_dir_all(root).ok();
}
