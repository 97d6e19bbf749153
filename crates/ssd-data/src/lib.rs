//! PASCAL VOC data for SSD: VOC XML and image-set reading over one or more roots, class lists,
//! the SSD augmentation pipeline (Caffe semantics), per-sample target encoding in loader workers,
//! Burn `Dataset`/`Batcher` types and a synthetic VOC-format dataset writer.
//!
//! Not implemented yet: this crate is filled by the ssd-data issue. It exports nothing today.
