//! Helpers shared by the integration tests.

pub mod lite;
pub mod parity;
