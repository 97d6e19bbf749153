//! `ssd`: SSD (Single Shot MultiBox Detector, Liu et al. 2016) in Rust on Burn.
//!
//! This root package hosts the workspace's cross-crate integration tests (`tests/`) and criterion
//! benches (`benches/`), and re-exports two crates under one name: [`core`] (`ssd-core`: box
//! types, IoU, priors, the box coder, prior matching, NMS) and [`backend`] (`ssd-backend`: a
//! backend by name to a Burn device). The other crates — `ssd-data`, `ssd-model`, `ssd-eval`,
//! `ssd-evaluation`, `ssd-train`, `ssd-serve`, `ssd-track` and the `ssd` binary's `ssd-cli` — are used by
//! their own names; `docs/architecture.md` draws how they stack.

pub use ssd_backend as backend;
pub use ssd_core as core;
