//! Helpers shared by the integration tests.

pub mod parity;
pub mod torch_net;
