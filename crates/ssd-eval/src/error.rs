//! The error type of `ssd-eval`.

use std::path::PathBuf;

/// What can go wrong evaluating detections.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// An evaluation setting out of its range.
    #[error(transparent)]
    Setting(#[from] ssd_core::SettingError),
    /// A result line that is not `<image_id> <score> <xmin> <ymin> <xmax> <ymax>` with finite numbers.
    #[error("{}:{line}: malformed result line ({reason}): {text:?}", path.display())]
    MalformedLine {
        /// The results file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
        /// The line.
        text: String,
    },
    /// A detection for an image that is not in the evaluated image set.
    #[error("{}: image {image_id:?} is not in the image set", location(path, *line))]
    UnknownImage {
        /// The results file, when the detection came from one.
        path: Option<PathBuf>,
        /// Its 1-based line.
        line: Option<usize>,
        /// The image id.
        image_id: String,
    },
    /// A detection whose class label is 0 (background) or beyond the class list.
    #[error("detection for image {image_id:?} has class {label}, outside 1..={classes}")]
    UnknownClass {
        /// The image id.
        image_id: String,
        /// The 1-based label given.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A detection with a NaN or infinite score or coordinate.
    #[error("detection for image {image_id:?} has a non-finite score or coordinate")]
    NonFinite {
        /// The image id.
        image_id: String,
    },
    /// Two results files for the same class in one folder.
    #[error("{}: several results files for class {class:?}: {}", folder.display(), files.join(", "))]
    AmbiguousResults {
        /// The folder.
        folder: PathBuf,
        /// The class.
        class: String,
        /// The file names.
        files: Vec<String>,
    },
    /// A class without a results file.
    #[error(
        "{}: no results file for class {class:?} (expected {expected}{}); if the class has no detections, say so with --missing-as-empty",
        folder.display(),
        other_case.as_ref().map_or(String::new(), |n| format!("; found {n}, named in another case"))
    )]
    MissingResults {
        /// The folder.
        folder: PathBuf,
        /// The class.
        class: String,
        /// The file name pattern expected.
        expected: String,
        /// A file whose name matches but for letter case.
        other_case: Option<String>,
    },
    /// The COCO engine refused its input (a category listed twice, a non-finite box).
    #[error("COCO evaluation: {0}")]
    Coco(String),
    /// A COCO results file that does not parse, or names an image or category the ground truth
    /// lacks.
    #[error("{}: {}{message}", path.display(), if json_path.is_empty() { String::new() } else { format!("{json_path}: ") })]
    BadCocoResults {
        /// The file.
        path: PathBuf,
        /// Where in the document (`[12].bbox`).
        json_path: String,
        /// What is wrong.
        message: String,
    },
    /// An image id that appears twice in the ground truth (an image set listing it twice, or the
    /// same root given twice).
    #[error("image {0:?} appears twice in the image set (or its root was given twice)")]
    DuplicateImage(String),
    /// A results folder without a single results file for the image set.
    #[error("{}: no results files `*_det_{image_set}_<class>.txt`", folder.display())]
    NoResults {
        /// The folder.
        folder: PathBuf,
        /// The image-set name in the expected file names.
        image_set: String,
    },
    /// An I/O failure.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn location(path: &Option<PathBuf>, line: Option<usize>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("{}:{l}", p.display()),
        (Some(p), None) => p.display().to_string(),
        _ => "detections".to_owned(),
    }
}
