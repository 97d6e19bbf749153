//! Evaluation of a detector on a VOC image set: detection over every image (loaded and resized
//! by worker threads, batched on the device), then the devkit's mAP.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use ssd_data::{BatchPlan, Prefetcher, SsdBatcher, SsdDataset, VocDataset};
use ssd_eval::{Detection, EvalConfig, Evaluation, GroundTruthObject, VocEvaluator, devkit_box};
use ssd_model::Detector;

use crate::TrainError;

/// How to run the detection pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Loading threads.
    pub workers: usize,
}

impl EvalOptions {
    /// Checks the ranges: `batch-size` at least 1, `workers` in `1..=256` (named like the flags of
    /// `ssd eval`).
    pub fn validate(&self) -> Result<(), TrainError> {
        ssd_core::at_least_one("batch-size", self.batch_size)?;
        Ok(ssd_core::workers("workers", self.workers)?)
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            batch_size: 8,
            workers: 2,
        }
    }
}

/// An evaluator holding `voc`'s ground truth (class list, difficult flags, boxes in the devkit's
/// pixels) and no detections yet. An image id listed twice is an error (its objects would count
/// twice).
pub fn voc_evaluator(voc: &VocDataset) -> Result<VocEvaluator, TrainError> {
    let images = (0..voc.len())
        .map(|i| {
            let objects = voc
                .annotation(i)
                .objects
                .iter()
                .map(|o| GroundTruthObject {
                    label: o.label,
                    bbox: devkit_box([o.bbox.xmin, o.bbox.ymin, o.bbox.xmax, o.bbox.ymax]),
                    difficult: o.difficult,
                })
                .collect();
            (voc.image_id(i).to_owned(), objects)
        })
        .collect();
    Ok(VocEvaluator::new(voc.classes().names().to_vec(), images)?)
}

/// Runs `detector` over every image of `voc` (with its post-processing settings) and returns an
/// evaluator holding the ground truth and the detections. `progress` is called with the number
/// of images done after each batch. Options or post-processing thresholds out of range are an
/// error before anything runs.
pub fn detect_dataset(
    detector: &Detector,
    voc: &Arc<VocDataset>,
    options: &EvalOptions,
    mut progress: impl FnMut(usize),
) -> Result<VocEvaluator, TrainError> {
    options.validate()?;
    detector
        .post_process()
        .validate()
        .map_err(ssd_model::ModelError::from)?;
    let dataset = SsdDataset::eval(Arc::clone(voc), detector.config().input_size() as u32);
    let plan = BatchPlan {
        len: voc.len(),
        batch_size: options.batch_size,
        shuffle: None,
        keep_partial: true,
    };
    let batches = plan.batches_per_epoch();
    let mut evaluator = voc_evaluator(voc)?;
    let mut done = 0;
    for next in Prefetcher::new(dataset, plan, 0, batches, options.workers) {
        let (_, _, items) = next?;
        let batch = SsdBatcher.batch(items, detector.device());
        let found = detector.detect_tensor(batch.images, &batch.original_sizes)?;
        for (id, dets) in batch.image_ids.iter().zip(found) {
            let dets: Vec<Detection> = dets
                .iter()
                .map(|d| Detection {
                    label: d.label,
                    score: f64::from(d.score),
                    bbox: devkit_box(d.bbox),
                })
                .collect();
            evaluator.add(id, &dets)?;
        }
        done += batch.image_ids.len();
        progress(done);
    }
    Ok(evaluator)
}

/// The VOC report of `detector` on `voc`: [`detect_dataset`], then the evaluation with `config`
/// (the paper's: VOC07 11-point AP at IoU 0.5).
pub fn evaluate(
    detector: &Detector,
    voc: &Arc<VocDataset>,
    options: &EvalOptions,
    config: &EvalConfig,
) -> Result<Evaluation, TrainError> {
    // Checked before the detection pass, not after it.
    config.validate().map_err(ssd_eval::EvalError::from)?;
    Ok(detect_dataset(detector, voc, options, |_| {})?.evaluate(config)?)
}
