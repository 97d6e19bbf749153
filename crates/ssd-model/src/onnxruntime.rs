//! The network run by ONNX Runtime through the `ort` crate (dynamically loaded; see
//! [`crate::engine`]): a session over the graph [`crate::onnx`] writes, or an `.onnx` file with
//! its metadata, returning `loc` and `conf` as the Burn network does.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::ep::{self, ArbitrarilyConfigurableExecutionProvider};
use ort::session::Session;
use ort::value::Tensor;
use ssd_data::ClassList;

use crate::engine::{
    ORT_INSTALL_HINT, ORT_MIN_VERSION, OrtOptions, OrtProvider, Precision, cpu_has_bf16,
    find_onnxruntime,
};
use crate::{ModelError, SsdConfig};

/// The one ONNX Runtime of the process (a library is loaded once) and the file it came from.
static RUNTIME: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

fn ort_error(what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Engine(format!("ONNX Runtime: {what}: {e}"))
}

/// Loads ONNX Runtime (once per process) and returns its environment.
fn runtime(options: &OrtOptions) -> Result<&'static ort::environment::Environment, ModelError> {
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((loaded, env)) = RUNTIME.get() {
        if let Some(path) = options.library.as_ref().filter(|p| *p != loaded) {
            return Err(ModelError::Engine(format!(
                "ONNX Runtime is loaded from {} already; {} cannot be loaded beside it in one \
                 process",
                loaded.display(),
                path.display()
            )));
        }
        return Ok(env);
    }
    let path = find_onnxruntime(options);
    let builder = ort::init_from(&path).map_err(|e| {
        ModelError::Engine(format!(
            "ONNX Runtime (>= {ORT_MIN_VERSION}) could not be loaded: {e}; {ORT_INSTALL_HINT}"
        ))
    })?;
    let env = builder
        .with_name("ssd")
        .with_telemetry(false)
        .build()
        .map_err(|e| ort_error("creating its environment", e))?;
    let (_, env) = RUNTIME.get_or_init(|| (path, env));
    Ok(env)
}

/// The ONNX Runtime library this process loaded (after the first session).
pub fn loaded_runtime() -> Option<PathBuf> {
    RUNTIME.get().map(|(path, _)| path.clone())
}

/// An output copied to the host: its values and shape.
pub(crate) type HostOutput = (Vec<f32>, [usize; 3]);

/// A session of the SSD graph (input `images`, outputs `loc` and `conf`).
pub(crate) struct OrtNetwork {
    session: Mutex<Session>,
    /// What the session runs on, for reports: `"onnxruntime cpu fp32"`.
    pub(crate) description: String,
}

impl std::fmt::Debug for OrtNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtNetwork")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl OrtNetwork {
    /// A session over an ONNX model's bytes; `source` names it in errors.
    pub(crate) fn new(
        bytes: &[u8],
        source: &Path,
        options: &OrtOptions,
    ) -> Result<Self, ModelError> {
        let env = runtime(options)?;
        let mut precision = options.precision;
        if precision == Precision::Bf16 && !cpu_has_bf16() {
            eprintln!(
                "warning: --precision bf16: this CPU has no bf16 matrix units (AMX, AVX512-BF16); \
                 running fp32"
            );
            precision = Precision::Fp32;
        }
        let provider = match (options.provider, precision) {
            (OrtProvider::Cpu, Precision::Bf16) => OrtProvider::Openvino,
            (p @ (OrtProvider::Cuda | OrtProvider::Tensorrt), Precision::Bf16) => {
                return Err(ModelError::Engine(format!(
                    "--precision bf16 runs through OpenVINO on the CPU, not with the {} provider",
                    p.name()
                )));
            }
            (p, _) => p,
        };
        let mut builder = Session::builder(env).map_err(|e| ort_error("session options", e))?;
        if let Some(threads) = options.threads {
            builder = builder
                .with_intra_threads(threads)
                .map_err(|e| ort_error("threads", e))?;
        }
        let dispatch = match provider {
            OrtProvider::Cpu => None,
            OrtProvider::Openvino => {
                let hint = match precision {
                    Precision::Fp32 => "f32",
                    Precision::Bf16 => "bf16",
                };
                let mut ov = ep::OpenVINO::default()
                    .with_device_type("CPU")
                    .with_arbitrary_config(
                        "load_config",
                        format!(r#"{{"CPU":{{"INFERENCE_PRECISION_HINT":"{hint}"}}}}"#),
                    );
                if let Some(threads) = options.threads {
                    ov = ov.with_num_threads(threads);
                }
                Some(ov.build())
            }
            OrtProvider::Cuda => Some(ep::CUDA::default().build()),
            OrtProvider::Tensorrt => Some(ep::TensorRT::default().build()),
        };
        if let Some(dispatch) = dispatch {
            builder = builder
                .with_execution_providers([dispatch.error_on_failure()])
                .map_err(|e| {
                    ModelError::Engine(format!(
                        "ONNX Runtime's {} execution provider is not available in {}: {e}",
                        provider.name(),
                        loaded_runtime().map_or_else(String::new, |p| p.display().to_string())
                    ))
                })?;
        }
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| ModelError::Weights {
                path: source.to_owned(),
                message: format!("ONNX Runtime cannot load the model: {e}"),
            })?;
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if outputs != ["loc", "conf"] {
            return Err(ModelError::Weights {
                path: source.to_owned(),
                message: format!(
                    "the model's outputs are {outputs:?}, not [\"loc\", \"conf\"]: export it \
                     without --postprocess to run it here"
                ),
            });
        }
        Ok(Self {
            session: Mutex::new(session),
            description: format!("onnxruntime {} {}", provider.name(), precision.name()),
        })
    }

    /// `loc` (`[n, P, 4]`) and `conf` (`[n, P, C]`) of `n` preprocessed images of `side`.
    pub(crate) fn forward(
        &self,
        pixels: Vec<f32>,
        n: usize,
        side: usize,
    ) -> Result<[HostOutput; 2], ModelError> {
        let input = Tensor::from_array(([n, 3, side, side], pixels))
            .map_err(|e| ort_error("input tensor", e))?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session
            .run(ort::inputs!["images" => input])
            .map_err(|e| ort_error("inference", e))?;
        let take = |name: &str| -> Result<HostOutput, ModelError> {
            let value = outputs
                .get(name)
                .ok_or_else(|| ort_error("inference", format!("no output `{name}`")))?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| ort_error(name, e))?;
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            let [a, b, c] = dims[..] else {
                return Err(ort_error(name, format!("shape {dims:?}, expected 3 axes")));
            };
            Ok((data.to_vec(), [a, b, c]))
        };
        Ok([take("loc")?, take("conf")?])
    }
}

/// An `.onnx` file `ssd export` wrote: its session, configuration and classes (metadata
/// `ssd_config`, `classes`, `category_ids`).
pub(crate) fn open_onnx_file(
    path: &Path,
    classes: Option<ClassList>,
    options: &OrtOptions,
) -> Result<(OrtNetwork, SsdConfig, ClassList), ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Weights {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let network = OrtNetwork::new(&bytes, path, options)?;
    let bad = |key: &str, problem: String| ModelError::Weights {
        path: path.to_owned(),
        message: format!("metadata `{key}`: {problem} (a file `ssd export` wrote has it)"),
    };
    let (config, names, ids) = {
        let session = network.session.lock().unwrap_or_else(|e| e.into_inner());
        let metadata = session
            .metadata()
            .map_err(|e| ort_error("reading the metadata", e))?;
        let get = |key: &str| {
            metadata
                .custom(key)
                .ok_or_else(|| bad(key, "missing".into()))
        };
        let config: SsdConfig = serde_json::from_str(&get("ssd_config")?)
            .map_err(|e| bad("ssd_config", e.to_string()))?;
        let names: Vec<String> =
            serde_json::from_str(&get("classes")?).map_err(|e| bad("classes", e.to_string()))?;
        let ids: Option<Vec<u64>> = metadata
            .custom("category_ids")
            .map(|s| serde_json::from_str(&s).map_err(|e| bad("category_ids", e.to_string())))
            .transpose()?;
        (config, names, ids)
    };
    config
        .validate()
        .map_err(|e| bad("ssd_config", e.to_string()))?;
    let classes = match classes {
        Some(c) => c,
        None => {
            // Index 0 is the background.
            let names = names.into_iter().skip(1).collect();
            let list = ClassList::new(names).map_err(|e| bad("classes", e.to_string()))?;
            match ids {
                Some(ids) => list
                    .with_category_ids(ids)
                    .map_err(|e| bad("category_ids", e.to_string()))?,
                None => list,
            }
        }
    };
    Ok((network, config, classes))
}
