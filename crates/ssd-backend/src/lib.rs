//! Backend selection: the one place where a backend's name (`flex`, `tch`, `wgpu`, `cuda`)
//! becomes a Burn [`Device`], shared by the `ssd` binary, servers that embed `ssd-serve`, the
//! benches and the examples. Library crates enable no backend; this one is their switchboard.
//!
//! Which backends exist is decided at build time by this crate's cargo features `flex`, `tch`,
//! `wgpu` and `cuda` (none by default; the `ssd` binary enables `flex`); asking for one that is
//! not compiled in is an error that says how to get it. With the `clap` feature, [`Backend`] is a
//! `clap::ValueEnum`.
//!
//! ```
//! use ssd_backend::Backend;
//!
//! // The backend asked for by name (a flag, a config file), else the first compiled in.
//! let asked: Option<Backend> = std::env::var("SSD_BACKEND").ok().and_then(|n| n.parse().ok());
//! match Backend::chosen(asked).and_then(|b| b.device()) {
//!     Ok(device) => println!("running on {device:?}"),
//!     Err(e) => println!("{e}"),
//! }
//! ```

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A Burn backend `ssd` can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Backend {
    /// Burn Flex: pure-Rust CPU (SIMD + rayon). Cargo feature `flex`.
    Flex,
    /// libtorch through burn-tch: CUDA device 0 when libtorch sees a GPU, else CPU. Cargo feature
    /// `tch`.
    Tch,
    /// burn-wgpu: Vulkan, Metal or DX12 (Mesa's lavapipe on machines without a GPU). Cargo feature
    /// `wgpu`.
    Wgpu,
    /// Burn's native CUDA runtime (CubeCL, NVIDIA GPUs; kernels compiled to PTX by LLVM's NVPTX
    /// target, linked into the binary; the driver's `libcuda` is loaded at run time, CUDA's
    /// `libdevice` found through `CUDA_PATH`). Cargo feature `cuda`.
    Cuda,
}

/// Every backend, in the order `--help` lists them.
pub const ALL_BACKENDS: [Backend; 4] = [Backend::Flex, Backend::Tch, Backend::Wgpu, Backend::Cuda];

/// Why a backend could not be turned into a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend's cargo feature was not enabled when this binary was built.
    #[error(
        "backend `{requested}` is not compiled into this binary (compiled in: {compiled}); \
         rebuild with `--features {requested}`"
    )]
    NotCompiled {
        /// The backend asked for.
        requested: Backend,
        /// The ones that are available, comma-separated.
        compiled: String,
    },
    /// A device index the backend does not have.
    #[error("--devices {index}: backend `{backend}` has {available}")]
    NoSuchDevice {
        /// The backend.
        backend: Backend,
        /// The index asked for.
        index: usize,
        /// What it has, in words ("one device (0)", "2 CUDA devices (0..1)").
        available: String,
    },
    /// The backend is compiled in but finds no device on this machine.
    #[error("backend `{backend}` finds no device here: {reason}")]
    Unavailable {
        /// The backend.
        backend: Backend,
        /// What it needs or what failed.
        reason: String,
    },
    /// A name that is not a backend.
    #[error("unknown backend `{0}`: expected one of flex, tch, wgpu, cuda")]
    Unknown(String),
    /// The backend's device computed a wrong result, or none could be read back.
    #[error(
        "backend `{backend}` computed {got} for the sum of a 256x256 ones matrix squared (expected 16777216)"
    )]
    WrongResult {
        /// The backend.
        backend: Backend,
        /// What it gave, in words.
        got: String,
    },
    /// A build with no backend feature at all.
    #[error(
        "no backend is compiled into this binary; rebuild with `--features flex` (or tch, wgpu, \
         cuda)"
    )]
    NoneCompiled,
}

impl Backend {
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Tch => "tch",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// True when this backend's cargo feature was enabled at build time.
    pub const fn is_compiled(self) -> bool {
        match self {
            Backend::Flex => cfg!(feature = "flex"),
            Backend::Tch => cfg!(feature = "tch"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The backends compiled into this build, in [`ALL_BACKENDS`] order.
    pub fn compiled() -> Vec<Backend> {
        ALL_BACKENDS
            .into_iter()
            .filter(|b| b.is_compiled())
            .collect()
    }

    /// The default backend: the first compiled-in one (`flex` in a default build), or `None` in a
    /// build with no backend feature at all.
    pub fn default_compiled() -> Option<Backend> {
        Backend::compiled().into_iter().next()
    }

    /// `requested`, else the default backend ([`Backend::default_compiled`]).
    pub fn chosen(requested: Option<Backend>) -> Result<Backend, BackendError> {
        requested
            .or_else(Backend::default_compiled)
            .ok_or(BackendError::NoneCompiled)
    }

    /// The Burn device for inference on this backend.
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            Backend::Tch => Ok(libtorch_device()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "cuda")]
            Backend::Cuda => cuda_device_count().map(|_| Device::cuda(0usize)),
            #[allow(unreachable_patterns)] // reachable only when a backend feature is off
            requested => Err(BackendError::NotCompiled {
                requested,
                compiled: compiled_list(),
            }),
        }
    }

    /// The training devices for `indices` (the backend's first device when empty). Flex and
    /// wgpu have one device, 0; tch has the CUDA devices libtorch sees (0 is the CPU when it sees
    /// none).
    pub fn devices(self, indices: &[usize]) -> Result<Vec<Device>, BackendError> {
        if indices.is_empty() {
            return Ok(vec![self.device()?]);
        }
        indices.iter().map(|&i| self.indexed_device(i)).collect()
    }

    fn indexed_device(self, index: usize) -> Result<Device, BackendError> {
        // Device 0 is the backend's default device; counting may open the runtime.
        let count = if index == 0 { 1 } else { self.device_count() };
        if index < count {
            #[cfg(feature = "tch")]
            if self == Backend::Tch && count > 1 {
                #[allow(deprecated)] // see libtorch_device
                return Ok(Device::libtorch_cuda(index));
            }
            #[cfg(feature = "cuda")]
            if self == Backend::Cuda {
                return Ok(Device::cuda(index));
            }
            return self.device();
        }
        let available = if count > 1 {
            format!("{count} devices (0..{})", count - 1)
        } else {
            "one device (0)".to_owned()
        };
        Err(BackendError::NoSuchDevice {
            backend: self,
            index,
            available,
        })
    }

    /// How many devices the backend can train on.
    fn device_count(self) -> usize {
        match self {
            #[cfg(feature = "tch")]
            Backend::Tch => usize::try_from(tch::Cuda::device_count()).map_or(1, |n| n.max(1)),
            #[cfg(feature = "cuda")]
            Backend::Cuda => cuda_device_count().unwrap_or(1),
            _ => 1,
        }
    }

    /// The backend's inference device, checked to compute: the sum of a 256x256 matrix of ones
    /// squared must be 256³ (what `ssd backends` runs for each backend).
    pub fn check(self) -> Result<Device, BackendError> {
        let device = self.device()?;
        let x = burn::tensor::Tensor::<2>::ones([256, 256], &device);
        let total = x.clone().matmul(x).sum().into_data().try_to_vec::<f32>();
        match total.as_deref() {
            Ok([v]) if *v == 256.0 * 256.0 * 256.0 => Ok(device),
            Ok(other) => Err(BackendError::WrongResult {
                backend: self,
                got: format!("{other:?}"),
            }),
            Err(e) => Err(BackendError::WrongResult {
                backend: self,
                got: format!("nothing readable ({e:?})"),
            }),
        }
    }

    /// The same device with autodiff, for training.
    pub fn autodiff_device(self) -> Result<Device, BackendError> {
        self.device().map(Device::autodiff)
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn marks its libtorch constructors deprecated in 0.22; they are what we want
fn libtorch_device() -> Device {
    if tch::Cuda::is_available() {
        Device::libtorch_cuda(0usize)
    } else {
        Device::libtorch()
    }
}

/// The CUDA devices Burn's CUDA runtime finds, counted once per process. Without an NVIDIA
/// driver the runtime panics while loading it: that becomes [`BackendError::Unavailable`].
#[cfg(feature = "cuda")]
fn cuda_device_count() -> Result<usize, BackendError> {
    use std::sync::OnceLock;
    static COUNT: OnceLock<Result<usize, String>> = OnceLock::new();
    let count = COUNT.get_or_init(|| {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let found = std::panic::catch_unwind(|| {
            Device::enumerate(burn::tensor::DeviceType::Cuda)
                .into_vec()
                .len()
        });
        std::panic::set_hook(quiet);
        let message = |payload: &(dyn std::any::Any + Send)| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the CUDA runtime failed to start".to_owned())
        };
        match found {
            Ok(0) => Err("no CUDA device".to_owned()),
            Ok(n) => Ok(n),
            Err(payload) => Err(message(payload.as_ref())),
        }
    });
    count.clone().map_err(|reason| BackendError::Unavailable {
        backend: Backend::Cuda,
        reason: format!(
            "{reason} (it needs an NVIDIA GPU with its driver's libcuda.so.1, and CUDA's \
             nvvm/libdevice/libdevice.10.bc under CUDA_PATH)"
        ),
    })
}

fn compiled_list() -> String {
    let names: Vec<&str> = Backend::compiled().into_iter().map(Backend::name).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_BACKENDS
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| BackendError::Unknown(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in ALL_BACKENDS {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert!(matches!(
            "rocm".parse::<Backend>(),
            Err(BackendError::Unknown(_))
        ));
    }

    #[test]
    fn compiled_backends_give_devices_and_others_a_clear_error() {
        for b in ALL_BACKENDS {
            match b.device() {
                Ok(_) => assert!(b.is_compiled()),
                Err(e @ BackendError::Unavailable { .. }) => {
                    assert!(b.is_compiled());
                    assert!(e.to_string().contains(b.name()), "{e}");
                }
                Err(e) => {
                    assert!(!b.is_compiled());
                    let msg = e.to_string();
                    assert!(
                        msg.contains(b.name()) && msg.contains("--features"),
                        "{msg}"
                    );
                }
            }
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_has_one_device() {
        assert_eq!(Backend::Flex.devices(&[]).map(|d| d.len()), Ok(1));
        assert_eq!(Backend::Flex.devices(&[0]).map(|d| d.len()), Ok(1));
        let err = Backend::Flex
            .devices(&[0, 1])
            .expect_err("flex has no device 1");
        assert_eq!(
            err.to_string(),
            "--devices 1: backend `flex` has one device (0)"
        );
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_is_the_default_and_computes() {
        use burn::tensor::Tensor;
        assert_eq!(Backend::default_compiled(), Some(Backend::Flex));
        let device = Backend::Flex
            .autodiff_device()
            .expect("flex is compiled in");
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        let sum: Vec<f32> = x.sum().into_data().try_to_vec().expect("f32 data");
        assert_eq!(sum, vec![6.0]);
    }
}
