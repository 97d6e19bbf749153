//! The error type of `ssd-model`.

/// What can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An inconsistent [`SsdConfig`](crate::SsdConfig) (priors that do not match the layers, ...).
    #[error("invalid SSD configuration: {0}")]
    Config(String),
}
