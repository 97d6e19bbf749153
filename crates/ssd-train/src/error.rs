//! The error type of `ssd-train`.

use std::path::PathBuf;

use ssd_data::DataError;
use ssd_model::ModelError;

/// A range check's error, its setting named like the flag (`batch-size`).
impl From<ssd_core::SettingError> for TrainError {
    fn from(e: ssd_core::SettingError) -> Self {
        Self::Setting {
            name: e.name,
            message: format!("must be {}, got {}", e.allowed, e.value),
        }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting out of its range (the name is the command line flag's).
    #[error("--{name} {message}")]
    Setting {
        /// The setting, named like its flag (`batch-size`).
        name: &'static str,
        /// What is wrong, with the value given.
        message: String,
    },
    /// The dataset could not be opened, or an image could not be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model could not be built, loaded or saved.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A dataset where no image has a training target (a COCO file without annotations, or
    /// with crowd regions and empty boxes only).
    #[error(
        "{}: no image of `{set}` has a training target: {} images, {} annotations ({} crowd \
         regions, {} boxes empty once clipped to their image); training needs annotated objects",
        display_paths(files), report.images, report.objects + report.dropped, report.crowd,
        report.dropped
    )]
    NoTrainingTargets {
        /// The annotation files (or dataset roots).
        files: Vec<PathBuf>,
        /// The image or annotation set.
        set: String,
        /// What the dataset holds.
        report: ssd_data::DatasetReport,
    },
    /// COCO data whose category ids are not the model's (a resumed run keeps its checkpoint's
    /// ids, so that results are written with them).
    #[error(
        "{}: the categories have ids {dataset:?} but the model's are {model:?}; a run trains on \
         one category table",
        display_paths(files)
    )]
    CategoryIds {
        /// The annotation files.
        files: Vec<PathBuf>,
        /// The dataset's category ids.
        dataset: Vec<u64>,
        /// The model's.
        model: Vec<u64>,
    },
    /// A class list that does not fit the model.
    #[error(
        "the model predicts {num_classes} classes (with background) but the class list has {names} names"
    )]
    ClassCount {
        /// Outputs of the model, background included.
        num_classes: usize,
        /// Names in the list.
        names: usize,
    },
    /// The run is already at (or past) its last iteration.
    #[error(
        "nothing to do: the checkpoint is at iteration {done} and --iterations is {iterations}"
    )]
    NothingToDo {
        /// Iterations done.
        done: u64,
        /// Iterations asked for.
        iterations: u64,
    },
    /// Another training run holds the results folder (its lock, `<results>/.ssd-train.lock`).
    #[error("{}", in_use(results, *holder, checkpoint.as_deref()))]
    ResultsInUse {
        /// The results folder.
        results: PathBuf,
        /// The process holding it, when the lock file tells.
        holder: Option<u32>,
        /// The checkpoint asked to resume, when it is that run's.
        checkpoint: Option<PathBuf>,
    },
    /// A new run in a results folder that holds checkpoints of the same name.
    #[error(
        "{} already holds checkpoints named `{name}`: resume one with --resume, choose another \
         --model-save-name or --results, or replace them with --overwrite",
        dir.display()
    )]
    UsedResults {
        /// The weights folder.
        dir: PathBuf,
        /// The run's name.
        name: String,
    },
    /// A model that is neither a preset nor a readable model file.
    #[error("--model {name}: {source}")]
    ModelName {
        /// The name asked for.
        name: String,
        /// Why it is none.
        #[source]
        source: ModelError,
    },
    /// A settings file that cannot be read, does not parse, or has a key that is no setting.
    #[error("settings file {}: {message}", path.display())]
    SettingsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint folder that cannot be resumed from.
    #[error("--resume {}: {message}", path.display())]
    Resume {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss or the gradient norm stopped being a number.
    #[error(
        "{what} is {value} at iteration {iteration} (loc {loc}, conf {conf}); training stopped and \
         no checkpoint was written after it; last good checkpoint: {}. Try a lower --lr, \
         --warmup or --clip-grad",
        last_good.as_ref().map_or("none".to_owned(), |p| p.display().to_string())
    )]
    Diverged {
        /// `the loss`, `the gradient norm` or `a weight`.
        what: &'static str,
        /// The value.
        value: f64,
        /// The 1-based iteration.
        iteration: u64,
        /// The localisation part of the loss.
        loc: f64,
        /// The confidence part.
        conf: f64,
        /// The newest checkpoint whose weights are finite and gave a finite loss.
        last_good: Option<PathBuf>,
    },
    /// A file that went bad while training (every annotation and image was checked at the
    /// start); the progress before it was saved.
    #[error(
        "training stopped at iteration {iteration}; checkpoint: {}: {source}",
        checkpoint.as_ref().map_or("none".to_owned(), |p| p.display().to_string())
    )]
    DataDuringTraining {
        /// Iterations done.
        iteration: u64,
        /// The checkpoint holding them.
        checkpoint: Option<PathBuf>,
        /// What went wrong.
        source: DataError,
    },
    /// The batch stream ended early (a loading thread died).
    #[error("the data loader stopped at iteration {done} of {iterations}")]
    LoaderStopped {
        /// Iterations done.
        done: u64,
        /// Iterations asked for.
        iterations: u64,
    },
    /// A file or folder that could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row of a loss log that is not six numbers.
    #[error("{}:{line}: not a loss row (iteration,loss,loc,conf,lr,grad_norm)", path.display())]
    LossLog {
        /// The CSV file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// The optimizer state could not be saved or loaded.
    #[error("{}: {message}", path.display())]
    Optimizer {
        /// The optimizer file.
        path: PathBuf,
        /// Burn's message.
        message: String,
    },
}

impl TrainError {
    /// A [`TrainError::Setting`].
    pub(crate) fn setting(name: &'static str, message: impl Into<String>) -> Self {
        Self::Setting {
            name,
            message: message.into(),
        }
    }

    /// A [`TrainError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// The message of [`TrainError::ResultsInUse`].
fn in_use(
    results: &std::path::Path,
    holder: Option<u32>,
    checkpoint: Option<&std::path::Path>,
) -> String {
    let by = holder.map_or_else(String::new, |pid| format!(" (process {pid})"));
    match checkpoint {
        None => format!(
            "results folder {} is in use by another training run{by}: wait for it to end, or \
             give another --results",
            results.display()
        ),
        Some(checkpoint) => format!(
            "--resume {}: the run that writes it is still training in {}{by}; resume once it \
             has stopped",
            checkpoint.display(),
            results.display()
        ),
    }
}
