//! PASCAL VOC and COCO data for SSD: from a dataset folder or file to training batches.
//!
//! - [`DetectionDataset`]: one dataset type for both formats ([`DataLocation`] recognises which):
//!   `ImageSets/Main/<name>.txt` over one or more VOC roots (e.g. VOC2007 and VOC2012), or one
//!   or more COCO `instances_<name>.json` files (labels follow the category ids ascending, the
//!   ids are kept in the [`ClassList`], crowd regions marked); every annotation parsed and
//!   checked when opened ([`Annotation`]: 1-based VOC pixels made 0-based, COCO `[x, y, w, h]`
//!   made corners, boxes outside the image clipped or dropped and counted in a [`DatasetReport`]),
//!   images decoded to RGB with size limits ([`load_rgb`]), a class list ([`ClassList`], the 20
//!   VOC classes by default or one name per line from a file). Every kind of bad input is a
//!   distinct [`DataError`] naming the file.
//! - [`Augment`]: the SSD augmentation with Caffe's semantics (photometric distortion, expand,
//!   min-IoU crop, flip, resize, mean), seeded by a [`SampleRng`] so a seed reproduces a sample.
//! - [`TargetEncoder`]: ground truth matched to the priors (`ssd_core::match_priors`).
//! - [`SsdDataset`] (a Burn `Dataset` of transformed samples), [`BatchPlan`] (which images make
//!   batch `k`: a per-epoch shuffle seeded by `(seed, epoch)`), [`Prefetcher`] (batches in order,
//!   prepared ahead by worker threads: decoding, augmentation and matching run there) and
//!   [`SsdBatcher`] (items stacked into tensors on a device). Batch `k` depends only on `k`, not
//!   on the number of workers or their timing, so a resumed run sees the batches an uninterrupted
//!   one would have seen.
//! - [`video`]: frames from video files, streams and capture devices (through FFmpeg) or frame
//!   folders, and video files written from frames; [`write_synthetic_video`], moving shapes with
//!   their ground-truth tracks in the MOTChallenge layout.
//! - [`write_synthetic`]: a VOC-format dataset of coloured shapes for tests and the quickstart.
//!
//! This crate does not know the network: the caller passes the input size and the priors.
//!
//! ```no_run
//! use std::sync::Arc;
//! use burn::data::dataloader::batcher::Batcher;
//! use ssd_core::PriorConfig;
//! use ssd_data::{Augment, BatchPlan, ClassList, Prefetcher, SsdBatcher, SsdDataset, TargetEncoder, DetectionDataset};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let roots = ["VOCdevkit/VOC2007".into(), "VOCdevkit/VOC2012".into()];
//! let voc = Arc::new(DetectionDataset::open(&roots, "trainval", ClassList::voc())?);
//! println!("{}", voc.report());
//! let encoder = TargetEncoder::new(&PriorConfig::ssd300_voc(), 0.5)?;
//! let dataset = SsdDataset::train(Arc::clone(&voc), Augment::ssd_train(300), encoder, true, 42);
//! let plan = BatchPlan { len: voc.len(), batch_size: 32, shuffle: Some(42), keep_partial: false };
//! let device = burn::tensor::Device::default();
//! // Batches 0..1000 (as many epochs as that takes), four loading threads.
//! for next in Prefetcher::new(dataset, plan, 0, 1000, 4) {
//!     let (k, epoch, items) = next?;
//!     let batch = SsdBatcher.batch(items, &device);
//!     // images [32, 3, 300, 300], labels [32, 8732], locations [32, 8732, 4]
//!     # let _ = (k, epoch, batch);
//! }
//! # Ok(())
//! # }
//! ```

mod annotation;
mod augment;
mod batches;
mod classes;
mod coco;
mod dataset;
mod error;
mod image_io;
mod image_set;
pub mod jobs;
mod loader;
pub mod output;
mod rng;
pub mod synthetic;
mod targets;
pub mod video;

pub use annotation::{Annotation, GivenBox, Object, SanitizeReport};
pub use augment::{
    Augment, Augmented, CropSampler, Expand, GeometryPlan, Photometric, PhotometricPlan,
    VOC_MEAN_RGB, flip_box,
};
pub use batches::{BatchPlan, Prefetcher};
pub use classes::{COCO_CATEGORIES, ClassList, VOC_CLASSES};
pub use coco::check_coco_bytes;
pub use dataset::{
    DataLocation, DatasetFormat, DatasetReport, DetectionDataset, ImageEntry, LoadedImage,
};
pub use error::DataError;
pub use image_io::{
    ImageProbe, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, decode_rgb, image_header, load_rgb, probe_image,
};
pub use image_set::{ImageRef, ImageSet};
pub use loader::{ItemTargets, SsdBatch, SsdBatcher, SsdDataset, SsdItem};
pub use rng::SampleRng;
pub use synthetic::{
    SYNTHETIC_CLASSES, SYNTHETIC_COCO_IDS, SyntheticConfig, SyntheticFormat, SyntheticSummary,
    VideoConfig, VideoSummary, png_claiming, remove_synthetic, write_synthetic, write_synthetic_as,
    write_synthetic_video,
};
pub use targets::TargetEncoder;
