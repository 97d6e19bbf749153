//! The `ssd` command line, as a library so that tests and benches pick backends the way the binary
//! does.
//!
//! Today it holds backend selection ([`backend`]) and `ssd eval` on result files ([`eval`]);
//! `train`, `detect`, model evaluation and `quickstart` come with later issues. Model and geometry logic never live here (see `ssd-model`,
//! `ssd-core`).

pub mod backend;
pub mod eval;
