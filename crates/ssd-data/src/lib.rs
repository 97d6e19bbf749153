//! PASCAL VOC data for SSD: from a VOC folder to training batches.
//!
//! - [`VocDataset`]: `ImageSets/Main/<name>.txt` over one or more roots (e.g. VOC2007 and
//!   VOC2012), every annotation parsed and checked when opened ([`Annotation`]: 1-based VOC pixels
//!   made 0-based, boxes outside the image clipped or dropped and counted in a [`DatasetReport`]),
//!   images decoded to RGB with size limits ([`load_rgb`]), a class list ([`ClassList`], the 20
//!   VOC classes by default or one name per line from a file). Every kind of bad input is a
//!   distinct [`DataError`] naming the file.
//! - [`Augment`]: the SSD augmentation with Caffe's semantics (photometric distortion, expand,
//!   min-IoU crop, flip, resize, mean), seeded by a [`SampleRng`] so a seed reproduces a sample.
//! - [`TargetEncoder`]: ground truth matched to the priors (`ssd_core::match_priors`).
//! - [`SsdDataset`], [`SsdBatcher`], [`data_loader`]: Burn's `Dataset`, `Batcher` and
//!   multi-worker `DataLoader`; decoding, augmentation and matching run in the workers.
//! - [`write_synthetic`]: a VOC-format dataset of coloured shapes for tests and the quickstart.
//!
//! This crate does not know the network: the caller passes the input size and the priors.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ssd_core::PriorConfig;
//! use ssd_data::{data_loader, Augment, ClassList, LoaderConfig, SsdDataset, TargetEncoder, VocDataset};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let roots = ["VOCdevkit/VOC2007".into(), "VOCdevkit/VOC2012".into()];
//! let voc = VocDataset::open(&roots, "trainval", ClassList::voc())?;
//! println!("{}", voc.report());
//! let encoder = TargetEncoder::new(&PriorConfig::ssd300_voc(), 0.5)?;
//! let dataset = SsdDataset::train(Arc::new(voc), Augment::ssd_train(300), encoder, true, 42);
//! let config = LoaderConfig { batch_size: 32, workers: 4, shuffle: Some(42) };
//! let loader = data_loader(dataset.clone(), &config, &burn::tensor::Device::default());
//! for epoch in 0..2 {
//!     dataset.set_epoch(epoch);
//!     for batch in loader.iter() {
//!         let batch = batch?; // images [32, 3, 300, 300], labels [32, 8732], locations [32, 8732, 4]
//!         # let _ = batch;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod annotation;
mod augment;
mod classes;
mod dataset;
mod error;
mod image_io;
mod image_set;
mod loader;
mod parallel;
mod rng;
pub mod synthetic;
mod targets;

pub use annotation::{Annotation, SanitizeReport, VocObject};
pub use augment::{
    Augment, Augmented, CropSampler, Expand, GeometryPlan, Photometric, PhotometricPlan,
    VOC_MEAN_RGB, flip_box,
};
pub use classes::{ClassList, VOC_CLASSES};
pub use dataset::{DatasetReport, VocDataset, VocImage};
pub use error::DataError;
pub use image_io::{MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, load_rgb};
pub use image_set::{ImageRef, ImageSet};
pub use loader::{
    ItemTargets, LoaderConfig, SsdBatch, SsdBatcher, SsdDataset, SsdItem, data_loader,
};
pub use parallel::parallel_map;
pub use rng::SampleRng;
pub use synthetic::{SYNTHETIC_CLASSES, SyntheticConfig, SyntheticSummary, write_synthetic};
pub use targets::TargetEncoder;
