//! Safetensors files of host tensors, for tools outside Rust (a PyTorch trainer, NumPy): a
//! network's weights under the names of its PyTorch state dict ([`Ssd::save_safetensors`],
//! read back by [`Ssd::load_pytorch`] from a `.pth` of the same names, [`PthLayout::Native`]),
//! and the batches a training run dumps.
//!
//! [`PthLayout::Native`]: crate::PthLayout::Native

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::TensorData;
use safetensors::tensor::{Dtype, TensorView};

use crate::{ModelError, Ssd};

/// The values of one host tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HostValues<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 64-bit floats.
    F64(&'a [f64]),
    /// 64-bit integers (class labels).
    I64(&'a [i64]),
}

/// One tensor of a safetensors file: its name, shape and values (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor<'a> {
    /// The key in the file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, `shape`'s product of them.
    pub values: HostValues<'a>,
}

/// Writes `tensors` (and `metadata`, string to string) as a safetensors file at `path`, little
/// endian: through a temporary file beside it, renamed into place, so that `path` is never
/// half-written. A tensor whose values do not fill its shape is an error naming it.
pub fn write_safetensors(
    path: &Path,
    tensors: &[NamedTensor<'_>],
    metadata: &BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let error = |message: String| ModelError::Weights {
        path: path.to_owned(),
        message,
    };
    let mut bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for t in tensors {
        let (dtype, len, data) = match t.values {
            HostValues::F32(v) => (
                Dtype::F32,
                v.len(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            ),
            HostValues::F64(v) => (
                Dtype::F64,
                v.len(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            ),
            HostValues::I64(v) => (
                Dtype::I64,
                v.len(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            ),
        };
        if len != t.shape.iter().product::<usize>() {
            return Err(error(format!(
                "tensor {}: {len} values for shape {:?}",
                t.name, t.shape
            )));
        }
        bytes.push((t.name.clone(), dtype, t.shape.clone(), data));
    }
    let views = bytes
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.as_str(), view))
                .map_err(|e| error(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    let partial = path.with_extension("safetensors.partial");
    let bytes = safetensors::tensor::serialize(views, Some(info))
        .map_err(|e| error(format!("cannot write: {e}")))?;
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            error(format!("cannot write: {e}"))
        })
}

/// The name a state dict of PyTorch gives one of ours: a batch norm's `gamma` and `beta` are
/// PyTorch's `weight` and `bias`; every other name is the same.
pub(crate) fn pytorch_name(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => name.to_owned(),
    }
}

impl Ssd {
    /// Every float parameter and running statistic with its shape and values (in the float
    /// type the network holds them in), under the name a PyTorch state dict of this network in
    /// our module names gives it (`vgg.0.weight`, `norms.0.weight` for a batch norm's scale,
    /// `norms.0.running_var`, `l2norm.weight`, ...): what
    /// [`PthLayout::Native`](crate::PthLayout::Native) reads back.
    ///
    /// Batch-norm running statistics are read after the updates of every thread are merged
    /// (through [`Module::valid`], as checkpoints are saved), not as the last update left them.
    pub fn pytorch_state(&self) -> BTreeMap<String, TensorData> {
        self.valid()
            .collect(None, None, true)
            .into_iter()
            .filter(|t| t.dtype.is_float())
            .filter_map(|t| {
                let (name, dtype, shape, _, bytes) = t.into_parts().ok()?;
                Some((
                    pytorch_name(&name),
                    TensorData::from_bytes(bytes, shape, dtype),
                ))
            })
            .collect()
    }

    /// Writes [`Ssd::pytorch_state`] as a safetensors file with `metadata`: float64 tensors as
    /// float64, every other float type as float32.
    pub fn save_safetensors(
        &self,
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), ModelError> {
        enum Owned {
            F32(Vec<f32>),
            F64(Vec<f64>),
        }
        let state: Vec<(String, Vec<usize>, Owned)> = self
            .pytorch_state()
            .into_iter()
            .map(|(name, data)| {
                let shape = data.shape().to_vec();
                let values = if data.dtype() == burn::tensor::DType::F64 {
                    Owned::F64(data.iter::<f64>().collect())
                } else {
                    Owned::F32(data.iter::<f32>().collect())
                };
                (name, shape, values)
            })
            .collect();
        let tensors: Vec<NamedTensor<'_>> = state
            .iter()
            .map(|(name, shape, values)| NamedTensor {
                name: name.clone(),
                shape: shape.clone(),
                values: match values {
                    Owned::F32(v) => HostValues::F32(v.as_slice()),
                    Owned::F64(v) => HostValues::F64(v.as_slice()),
                },
            })
            .collect();
        write_safetensors(path, &tensors, metadata)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::{LoadMode, PthLayout, SsdConfig};

    /// A tiny VGG network with batch norm.
    fn tiny() -> SsdConfig {
        let json = include_str!("../../../tests/fixtures/tiny_model.json");
        serde_json::from_str(json).expect("tiny model")
    }

    /// The state dict of our names in PyTorch's conventions is read back as the native layout:
    /// every parameter and running statistic set, batch norms' `weight`/`bias` as our
    /// `gamma`/`beta`, PyTorch's `num_batches_tracked` ignored.
    #[test]
    fn our_state_dict_is_the_native_layout() {
        let model = tiny().init(&Device::flex()).expect("model");
        let state = model.pytorch_state();
        assert!(state.contains_key("norms.0.weight") && state.contains_key("norms.0.bias"));
        assert!(state.contains_key("norms.0.running_var") && state.contains_key("l2norm.weight"));
        assert!(
            !state
                .keys()
                .any(|k| k.ends_with("gamma") || k.ends_with("beta"))
        );
        let mut entries: Vec<(String, Vec<usize>)> = state
            .iter()
            .map(|(k, v)| (k.clone(), v.shape().to_vec()))
            .collect();
        entries.push(("norms.0.num_batches_tracked".to_owned(), vec![]));
        let report = model
            .check_state_dict(&entries, LoadMode::Full)
            .expect("the native layout loads");
        assert_eq!(report.layout, PthLayout::Native);
        assert_eq!(report.loaded.len(), state.len());
        assert!(
            report
                .mapping
                .contains(&("norms.3.bias".into(), "norms.3.beta".into()))
        );
        assert_eq!(
            report.ignored,
            vec!["norms.0.num_batches_tracked".to_owned()]
        );
        // A key that is none of ours is named.
        entries.push(("norms.0.scale".to_owned(), vec![4]));
        let error = model
            .check_state_dict(&entries, LoadMode::Full)
            .expect_err("an unknown key");
        assert!(error.to_string().contains("norms.0.scale"), "{error}");
    }

    #[test]
    fn safetensors_hold_the_state_dict_and_the_metadata() {
        let model = tiny().init(&Device::flex()).expect("model");
        let dir = std::env::temp_dir().join(format!("ssd-safetensors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("w.safetensors");
        let metadata = BTreeMap::from([("iteration".to_owned(), "7".to_owned())]);
        model.save_safetensors(&path, &metadata).expect("written");
        let bytes = std::fs::read(&path).expect("read");
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("a safetensors file");
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        assert_eq!(
            header.metadata().as_ref().and_then(|m| m.get("iteration")),
            Some(&"7".to_owned())
        );
        let state = model.pytorch_state();
        assert_eq!(file.len(), state.len());
        for (name, data) in &state {
            let view = file.tensor(name).expect("every tensor");
            assert_eq!(view.dtype(), Dtype::F32);
            assert_eq!(view.shape(), data.shape().as_slice());
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(values, data.iter::<f32>().collect::<Vec<_>>(), "{name}");
        }
        // Values that do not fill their shape are refused, naming the tensor; nothing is left.
        let bad = [NamedTensor {
            name: "labels".into(),
            shape: vec![2, 3],
            values: HostValues::I64(&[1, 2, 3]),
        }];
        let error = write_safetensors(&dir.join("bad.safetensors"), &bad, &BTreeMap::new())
            .expect_err("3 values for 6");
        assert!(error.to_string().contains("labels"), "{error}");
        assert!(!dir.join("bad.safetensors").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
