//! `ssd`: SSD (Single Shot MultiBox Detector, Liu et al. 2016) in Rust on Burn.
//!
//! This root package hosts the workspace's cross-crate integration tests (`tests/`) and criterion
//! benches (`benches/`), and re-exports the library crates under one name. The crates:
//!
//! - [`core`] (`ssd-core`): box types, IoU, priors, box coder, prior matching, NMS;
//! - [`cli`] (`ssd-cli`): backend selection (the `ssd` binary lives there).
//!
//! `ssd-data` (VOC image sets, class lists and annotations so far), `ssd-model` (exact
//! reductions so far) and `ssd-eval` (a placeholder) are filled by later issues.

pub use ssd_cli as cli;
pub use ssd_core as core;
