//! PASCAL VOC data for SSD.
//!
//! Done so far: image sets over several roots ([`ImageSet`]), images as RGB with a size limit
//! ([`load_rgb`]), class lists ([`ClassList`], the 20 VOC classes by default) and annotation files
//! ([`Annotation`]: roxmltree, 1-based VOC pixels made 0-based, boxes outside the image clipped or
//! dropped and counted, a distinct error per kind of bad input, each naming the file).
//!
//! Still to come (the ssd-data issue): the dataset type, the
//! SSD augmentation pipeline (Caffe semantics), per-sample target encoding in loader workers,
//! Burn `Dataset`/`Batcher` types and the synthetic VOC-format dataset writer. This crate does not
//! know the network.

mod annotation;
mod classes;
mod error;
mod image_io;
mod image_set;

pub use annotation::{Annotation, SanitizeReport, VocObject};
pub use classes::{ClassList, VOC_CLASSES};
pub use error::DataError;
pub use image_io::{MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, load_rgb};
pub use image_set::{ImageRef, ImageSet};
