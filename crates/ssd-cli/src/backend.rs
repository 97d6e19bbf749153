//! Backend selection: the one place where `--backend flex|tch|wgpu` becomes a Burn [`Device`].
//!
//! Which backends exist is decided at build time by the cargo features `flex` (default), `tch` and
//! `wgpu`; asking for one that is not compiled in is an error that says how to get it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A Burn backend `ssd` can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Backend {
    /// Burn Flex: pure-Rust CPU (SIMD + rayon). Cargo feature `flex`.
    Flex,
    /// libtorch through burn-tch: CUDA device 0 when libtorch sees a GPU, else CPU. Cargo feature
    /// `tch`.
    Tch,
    /// burn-wgpu: Vulkan, Metal or DX12 (Mesa's lavapipe on machines without a GPU). Cargo feature
    /// `wgpu`.
    Wgpu,
}

/// Every backend, in the order `--help` lists them.
pub const ALL_BACKENDS: [Backend; 3] = [Backend::Flex, Backend::Tch, Backend::Wgpu];

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
    /// A name that is not a backend.
    #[error("unknown backend `{0}`: expected one of flex, tch, wgpu")]
    Unknown(String),
}

impl Backend {
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Tch => "tch",
            Backend::Wgpu => "wgpu",
        }
    }

    /// True when this backend's cargo feature was enabled at build time.
    pub const fn is_compiled(self) -> bool {
        match self {
            Backend::Flex => cfg!(feature = "flex"),
            Backend::Tch => cfg!(feature = "tch"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
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

    /// The Burn device for inference on this backend.
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            Backend::Tch => Ok(libtorch_device()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)] // reachable only when a backend feature is off
            requested => Err(BackendError::NotCompiled {
                requested,
                compiled: compiled_list(),
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
            "cuda".parse::<Backend>(),
            Err(BackendError::Unknown(_))
        ));
    }

    #[test]
    fn compiled_backends_give_devices_and_others_a_clear_error() {
        for b in ALL_BACKENDS {
            match b.device() {
                Ok(_) => assert!(b.is_compiled()),
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
