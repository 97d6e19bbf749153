//! Samples and batches for SSD: a Burn `Dataset` of transformed samples and a `Batcher` that
//! stacks them on a device.
//!
//! [`SsdDataset::item_at`] does the per-sample work (decode, augment, match to the priors), so it
//! runs in the [`Prefetcher`](crate::Prefetcher)'s worker threads. Each sample's random stream
//! is derived from `(seed, epoch, index)` ([`SampleRng::for_sample`]), so a sample does not depend
//! on which worker draws it or when.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::{Augment, DataError, DetectionDataset, SampleRng, TargetEncoder};

/// Training targets of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemTargets {
    /// Class per prior, `[P]` (0 = background).
    pub labels: Vec<i64>,
    /// Encoded offsets per prior, `[P, 4]` row-major (zero for background priors).
    pub locations: Vec<f32>,
}

/// One transformed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SsdItem {
    /// Index in the [`DetectionDataset`].
    pub index: usize,
    /// Image id.
    pub image_id: String,
    /// Width and height of the original image in pixels.
    pub original_size: [u32; 2],
    /// `[3, S, S]` RGB planes, mean subtracted.
    pub image: Vec<f32>,
    /// Side `S` of the image.
    pub size: u32,
    /// Targets, when the dataset has an encoder (training).
    pub targets: Option<ItemTargets>,
}

struct Inner {
    voc: Arc<DetectionDataset>,
    augment: Augment,
    encoder: Option<TargetEncoder>,
    keep_difficult: bool,
    seed: u64,
    epoch: AtomicU64,
}

/// A [`DetectionDataset`] seen through a transform, as Burn items. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SsdDataset {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SsdDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsdDataset")
            .field("images", &self.inner.voc.len())
            .field("augment", &self.inner.augment)
            .field("targets", &self.inner.encoder.is_some())
            .field("keep_difficult", &self.inner.keep_difficult)
            .field("seed", &self.inner.seed)
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl SsdDataset {
    /// Training items: `augment` (normally [`Augment::ssd_train`]) and targets from `encoder`;
    /// difficult objects are dropped unless `keep_difficult` (the Caffe recipe keeps them).
    pub fn train(
        voc: Arc<DetectionDataset>,
        augment: Augment,
        encoder: TargetEncoder,
        keep_difficult: bool,
        seed: u64,
    ) -> Self {
        Self::new(voc, augment, Some(encoder), keep_difficult, seed)
    }

    /// Evaluation items: `transform` (resize and normalisation only, normally a detector's
    /// preprocessor or [`Augment::eval`]), no targets.
    pub fn eval(voc: Arc<DetectionDataset>, transform: Augment) -> Self {
        Self::new(voc, transform, None, true, 0)
    }

    fn new(
        voc: Arc<DetectionDataset>,
        augment: Augment,
        encoder: Option<TargetEncoder>,
        keep_difficult: bool,
        seed: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                voc,
                augment,
                encoder,
                keep_difficult,
                seed,
                epoch: AtomicU64::new(0),
            }),
        }
    }

    /// The underlying VOC dataset.
    pub fn voc(&self) -> &Arc<DetectionDataset> {
        &self.inner.voc
    }

    /// Sets the epoch that seeds the augmentation of the following items.
    pub fn set_epoch(&self, epoch: u64) {
        self.inner.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    /// Loads, transforms and encodes sample `index` for the current epoch ([`Self::set_epoch`]).
    pub fn item(&self, index: usize) -> Result<SsdItem, DataError> {
        self.item_at(index, self.epoch())
    }

    /// Loads, transforms and encodes sample `index` as in epoch `epoch` (the augmentation's random
    /// stream is [`SampleRng::for_sample`]`(seed, epoch, index)`), independent of
    /// [`Self::set_epoch`]: loaders that prefetch across an epoch boundary use this.
    pub fn item_at(&self, index: usize, epoch: u64) -> Result<SsdItem, DataError> {
        let inner = &self.inner;
        let voc = &inner.voc;
        let loaded = voc.load(index)?;
        let original_size = [loaded.annotation.width, loaded.annotation.height];
        let (boxes, labels) = voc.ground_truth(index, inner.keep_difficult);
        let mut rng = SampleRng::for_sample(inner.seed, epoch, index as u64);
        let out = inner.augment.apply(loaded.image, &boxes, &labels, &mut rng);
        let targets = match &inner.encoder {
            None => None,
            Some(encoder) => {
                let t = encoder.encode(&out.boxes, &out.labels).map_err(|source| {
                    DataError::Encoding {
                        path: voc.image_path(index),
                        source,
                    }
                })?;
                Some(ItemTargets {
                    labels: t.labels.iter().map(|&l| l as i64).collect(),
                    locations: t.locations.iter().flatten().copied().collect(),
                })
            }
        };
        Ok(SsdItem {
            index,
            image_id: voc.image_id(index).to_owned(),
            original_size,
            image: out.pixels,
            size: inner.augment.size,
            targets,
        })
    }
}

impl Dataset<SsdItem> for SsdDataset {
    fn get(&self, index: usize) -> Result<SsdItem, DatasetError> {
        self.item(index).map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        self.inner.voc.len()
    }
}

/// A batch on the device.
#[derive(Debug, Clone)]
pub struct SsdBatch {
    /// Images `[N, 3, S, S]`, mean subtracted.
    pub images: Tensor<4>,
    /// Class per prior `[N, P]` (training batches only).
    pub labels: Option<Tensor<2, Int>>,
    /// Encoded offsets `[N, P, 4]` (training batches only).
    pub locations: Option<Tensor<3>>,
    /// Dataset indices of the images.
    pub indices: Vec<usize>,
    /// Image ids.
    pub image_ids: Vec<String>,
    /// Original width and height of each image.
    pub original_sizes: Vec<[u32; 2]>,
    /// Positive priors (label above 0) of each image (training batches only), counted on the
    /// host so that the loss needs no read-back to size its hard-negative mining.
    pub positives: Vec<usize>,
}

/// Stacks [`SsdItem`]s into an [`SsdBatch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SsdBatcher;

impl Batcher<SsdItem, SsdBatch> for SsdBatcher {
    fn batch(&self, items: Vec<SsdItem>, device: &Device) -> SsdBatch {
        let n = items.len();
        let size = items.first().map_or(0, |i| i.size as usize);
        let images: Vec<f32> = items.iter().flat_map(|i| i.image.iter().copied()).collect();
        let images = Tensor::from_data(TensorData::new(images, [n, 3, size, size]), device);
        let with_targets: Vec<&ItemTargets> =
            items.iter().filter_map(|i| i.targets.as_ref()).collect();
        let (labels, locations) = if n > 0 && with_targets.len() == n {
            let p = with_targets[0].labels.len();
            let labels: Vec<i64> = with_targets
                .iter()
                .flat_map(|t| t.labels.iter().copied())
                .collect();
            let locations: Vec<f32> = with_targets
                .iter()
                .flat_map(|t| t.locations.iter().copied())
                .collect();
            (
                Some(Tensor::from_data(TensorData::new(labels, [n, p]), device)),
                Some(Tensor::from_data(
                    TensorData::new(locations, [n, p, 4]),
                    device,
                )),
            )
        } else {
            (None, None)
        };
        SsdBatch {
            images,
            labels,
            locations,
            indices: items.iter().map(|i| i.index).collect(),
            image_ids: items.iter().map(|i| i.image_id.clone()).collect(),
            original_sizes: items.iter().map(|i| i.original_size).collect(),
            positives: with_targets
                .iter()
                .map(|t| t.labels.iter().filter(|&&l| l > 0).count())
                .collect(),
        }
    }
}
