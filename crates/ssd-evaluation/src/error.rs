//! The error type of `ssd-evaluation`.

use std::path::PathBuf;

use ssd_data::DataError;
use ssd_eval::EvalError;
use ssd_model::ModelError;

/// What can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// A setting out of its range (named like the flag of `ssd eval`, `batch-size`).
    #[error("--{}", .0)]
    Setting(#[from] ssd_core::SettingError),
    /// The dataset could not be opened, an image could not be used, or an output may not be
    /// written.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model could not run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The metric or a results file failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A folder of devkit results files that could not be read.
    #[error("reading results from {}", path.display())]
    Results {
        /// The folder.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: EvalError,
    },
}
