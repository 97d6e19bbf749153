//! The error type of `ssd-model`.

/// What can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An inconsistent [`SsdConfig`](crate::SsdConfig) (priors that do not match the layers, ...).
    #[error("invalid SSD configuration: {0}")]
    Config(String),
    /// Weights that cannot be read, do not fit the model, or cannot be written; the message names
    /// each offending key with expected and found shapes.
    #[error("{}: {message}", path.display())]
    Weights {
        /// The weights file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
}
