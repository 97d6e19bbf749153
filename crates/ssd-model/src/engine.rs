//! Which runtime runs a [`Detector`](crate::Detector)'s network: Burn (on the backend of the
//! device given) or ONNX Runtime (with the cargo feature `onnxruntime`), and how ONNX Runtime is
//! found and set up. Pre- and post-processing are the detector's own either way, so both engines
//! give the same detections up to the float order of the network's sums.
//!
//! ONNX Runtime is loaded at run time (`dlopen`), never linked or downloaded: the shared library
//! of PyPI's `onnxruntime` wheel (`onnxruntime/capi/libonnxruntime.so.1.*`, what
//! `scripts/install-onnx-tools.sh` installs), of `onnxruntime-openvino` (with the OpenVINO
//! execution provider, `scripts/install-openvino.sh`) or of `onnxruntime-gpu` (CUDA, TensorRT).
//! Versions from [`ORT_MIN_VERSION`] on are accepted; an older one is refused at load.

use std::path::{Path, PathBuf};

/// The oldest ONNX Runtime release accepted (1.24, the C API version `ort` is built against);
/// newer ones keep the C API's compatibility. Tested with 1.24.1 (`onnxruntime-openvino`) and
/// 1.32.0 (`onnxruntime`).
pub const ORT_MIN_VERSION: &str = "1.24";

/// The runtime that runs the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    /// Burn, on the device the detector is loaded on.
    #[default]
    Burn,
    /// ONNX Runtime, from the network exported in memory (or an `.onnx` file `ssd export` wrote).
    OnnxRuntime(OrtOptions),
}

impl Engine {
    /// `"burn"` or `"onnxruntime"`, as `--engine` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Burn => "burn",
            Self::OnnxRuntime(_) => "onnxruntime",
        }
    }
}

/// How ONNX Runtime is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrtOptions {
    /// The shared library (`libonnxruntime.so.1.*`); `None`: see [`find_onnxruntime`].
    pub library: Option<PathBuf>,
    /// Threads of one inference (ONNX Runtime's intra-op threads; OpenVINO's); `None`: ONNX
    /// Runtime's default, one per physical core.
    pub threads: Option<usize>,
    /// The execution provider.
    pub provider: OrtProvider,
    /// The arithmetic of the matrix products.
    pub precision: Precision,
}

/// An ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OrtProvider {
    /// ONNX Runtime's own CPU kernels (every build has them).
    #[default]
    Cpu,
    /// Intel's OpenVINO on the CPU (PyPI `onnxruntime-openvino`); needed for bf16.
    Openvino,
    /// NVIDIA CUDA (PyPI `onnxruntime-gpu`).
    Cuda,
    /// NVIDIA TensorRT (PyPI `onnxruntime-gpu` with TensorRT installed).
    Tensorrt,
}

impl OrtProvider {
    /// The name `--provider` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Openvino => "openvino",
            Self::Cuda => "cuda",
            Self::Tensorrt => "tensorrt",
        }
    }
}

/// The arithmetic of the network's matrix products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Precision {
    /// float32 throughout.
    #[default]
    Fp32,
    /// bfloat16 products with float32 sums, where the CPU has bf16 matrix units (Intel AMX or
    /// AVX512-BF16), through OpenVINO; elsewhere float32, with a warning.
    Bf16,
}

impl Precision {
    /// The name `--precision` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
        }
    }
}

/// Whether this CPU multiplies bf16 matrices in hardware (Intel AMX-BF16 or AVX512-BF16): what
/// makes [`Precision::Bf16`] worth its accuracy cost.
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // AMX-BF16: CPUID leaf 7, sub-leaf 0, EDX bit 22 (its detection macro is unstable).
        let amx_bf16 = std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 22) != 0;
        amx_bf16 || std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The variable naming the ONNX Runtime library (the one `ort`'s own users set).
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The ONNX Runtime library to load, in this order: `options.library`; the file named by
/// `ORT_DYLIB_PATH`; the one the install scripts put under `$SSD_CACHE` (default
/// `~/.cache/ssd`): `openvino-venv` first when the OpenVINO provider or bf16 is asked for, then
/// `onnx-venv`; last `libonnxruntime.so`, for the system's dynamic loader to find.
pub fn find_onnxruntime(options: &OrtOptions) -> PathBuf {
    if let Some(path) = &options.library {
        return path.clone();
    }
    if let Some(path) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("SSD_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/ssd")));
    let wants_openvino =
        options.provider == OrtProvider::Openvino || options.precision == Precision::Bf16;
    let venvs: &[&str] = if wants_openvino {
        &["openvino-venv", "onnx-venv"]
    } else {
        &["onnx-venv", "openvino-venv"]
    };
    if let Some(cache) = cache {
        for venv in venvs {
            if let Some(found) = wheel_library(&cache.join(venv)) {
                return found;
            }
        }
    }
    // The dynamic loader's own search (LD_LIBRARY_PATH, ldconfig's cache).
    PathBuf::from("libonnxruntime.so")
}

/// `lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so.1.*` of a virtual env.
fn wheel_library(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flat_map(|d| d.filter_map(Result::ok).map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so.1."))
        })
        .collect();
    found.sort();
    found.pop()
}

/// How to install ONNX Runtime, for error messages.
pub const ORT_INSTALL_HINT: &str = "install it with `pip install onnxruntime` (or \
     `onnxruntime-openvino` for bf16, `onnxruntime-gpu` for CUDA) and set ORT_DYLIB_PATH to the \
     wheel's onnxruntime/capi/libonnxruntime.so.1.*, or run scripts/install-onnx-tools.sh";

/// The engines by name, as `--engine` takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EngineKind {
    /// Burn, on the backend `--backend` names.
    #[default]
    Burn,
    /// ONNX Runtime.
    Onnxruntime,
}
