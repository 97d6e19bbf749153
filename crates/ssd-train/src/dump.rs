//! The files of [`Trainer::dump_batches`](crate::Trainer::dump_batches): what a run trains on,
//! for a trainer outside Rust to consume.

use std::collections::BTreeMap;
use std::path::Path;

use ssd_data::SsdItem;
use ssd_model::{HostValues, NamedTensor, Ssd, write_safetensors};

use crate::{TrainError, TrainState};

/// `run.json`: the recipe, network and classes of the run.
pub(crate) fn write_run(dir: &Path, state: &TrainState) -> Result<(), TrainError> {
    let path = dir.join("run.json");
    let json = serde_json::to_string_pretty(state).map_err(|e| TrainError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, json).map_err(TrainError::io(&path))
}

/// `weights_<iteration>.safetensors`.
pub(crate) fn write_weights(dir: &Path, model: &Ssd, iteration: u64) -> Result<(), TrainError> {
    let metadata = BTreeMap::from([("iteration".to_owned(), iteration.to_string())]);
    model.save_safetensors(
        &dir.join(format!("weights_{iteration:06}.safetensors")),
        &metadata,
    )?;
    Ok(())
}

/// `batch_<iteration>.safetensors`: the images and encoded targets of one batch, and the image
/// ids (metadata `image_ids`, comma-separated).
pub(crate) fn write_batch(dir: &Path, iteration: u64, items: &[SsdItem]) -> Result<(), TrainError> {
    let n = items.len();
    let size = items.first().map_or(0, |i| i.size as usize);
    let images: Vec<f32> = items.iter().flat_map(|i| i.image.iter().copied()).collect();
    let mut labels: Vec<i64> = Vec::new();
    let mut locations: Vec<f32> = Vec::new();
    for item in items {
        if let Some(t) = &item.targets {
            labels.extend(&t.labels);
            locations.extend(&t.locations);
        }
    }
    let priors = labels.len().checked_div(n).unwrap_or(0);
    let tensors = [
        NamedTensor {
            name: "images".to_owned(),
            shape: vec![n, 3, size, size],
            values: HostValues::F32(&images),
        },
        NamedTensor {
            name: "labels".to_owned(),
            shape: vec![n, priors],
            values: HostValues::I64(&labels),
        },
        NamedTensor {
            name: "locations".to_owned(),
            shape: vec![n, priors, 4],
            values: HostValues::F32(&locations),
        },
    ];
    let ids: Vec<&str> = items.iter().map(|i| i.image_id.as_str()).collect();
    let metadata = BTreeMap::from([
        ("iteration".to_owned(), iteration.to_string()),
        ("image_ids".to_owned(), ids.join(",")),
    ]);
    write_safetensors(
        &dir.join(format!("batch_{iteration:06}.safetensors")),
        &tensors,
        &metadata,
    )?;
    Ok(())
}
