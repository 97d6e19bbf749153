//! The devkit's results files: `<comp>_det_<image set>_<class>.txt`, one detection per line,
//! `<image_id> <score> <xmin> <ymin> <xmax> <ymax>` in 1-based pixel coordinates.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ssd_core::parallel_map;

use crate::{EvalError, PixelBox, VocEvaluator};

/// The competition id the files are written under (`comp4`: trained on any data, as the SSD paper).
pub const DEFAULT_COMPETITION: &str = "comp4";

/// The file name for one class: `comp4_det_test_dog.txt`.
pub fn results_file_name(competition: &str, image_set: &str, class: &str) -> String {
    format!("{competition}_det_{image_set}_{class}.txt")
}

/// Writes every class's detections held by `evaluator` to `folder` (created if needed), one file
/// per class, empty files included. Numbers are written in Rust's shortest round-trip form, so
/// reading the files back gives the same evaluation. Returns the files written.
pub fn write_results(
    evaluator: &VocEvaluator,
    folder: &Path,
    competition: &str,
    image_set: &str,
) -> Result<Vec<PathBuf>, EvalError> {
    std::fs::create_dir_all(folder).map_err(|source| EvalError::Io {
        path: folder.to_owned(),
        source,
    })?;
    let mut written = Vec::with_capacity(evaluator.classes().len());
    for (c, class) in evaluator.classes().iter().enumerate() {
        let mut text = String::new();
        for (id, score, b) in evaluator.class_detections(c + 1) {
            let _ = writeln!(text, "{id} {score} {} {} {} {}", b[0], b[1], b[2], b[3]);
        }
        let path = folder.join(results_file_name(competition, image_set, class));
        // Whole or not at all: a full disk leaves the previous file, never a short one.
        let partial = path.with_extension("txt.partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|source| {
                let _ = std::fs::remove_file(&partial);
                EvalError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
        written.push(path);
    }
    Ok(written)
}

/// What a class without a results file means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingClass {
    /// An error naming the file expected (the default: a misnamed or forgotten file would
    /// otherwise score AP 0 without a word).
    #[default]
    Error,
    /// The class has no detections.
    NoDetections,
}

/// Finds each class's results file in `folder` (any competition id: names ending in
/// `_det_<image_set>_<class>.txt`). A class without a file is an error unless `missing` says it
/// has no detections; two files for one class are an error, and so is a folder with none at all.
pub fn find_results_files(
    folder: &Path,
    image_set: &str,
    classes: &[String],
    missing: MissingClass,
) -> Result<Vec<Option<PathBuf>>, EvalError> {
    let io = |source| EvalError::Io {
        path: folder.to_owned(),
        source,
    };
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    let mut found = Vec::with_capacity(classes.len());
    for class in classes {
        let suffix = format!("_det_{image_set}_{class}.txt");
        let matches: Vec<&String> = names.iter().filter(|n| n.ends_with(&suffix)).collect();
        match matches.as_slice() {
            [] if missing == MissingClass::Error => {
                let lower = suffix.to_lowercase();
                return Err(EvalError::MissingResults {
                    folder: folder.to_owned(),
                    class: class.clone(),
                    expected: format!("<comp>{suffix}"),
                    other_case: names
                        .iter()
                        .find(|n| n.to_lowercase().ends_with(&lower))
                        .cloned(),
                });
            }
            [] => found.push(None),
            [one] => found.push(Some(folder.join(one))),
            _ => {
                return Err(EvalError::AmbiguousResults {
                    folder: folder.to_owned(),
                    class: class.clone(),
                    files: matches.into_iter().cloned().collect(),
                });
            }
        }
    }
    if found.iter().all(Option::is_none) {
        return Err(EvalError::NoResults {
            folder: folder.to_owned(),
            image_set: image_set.to_owned(),
        });
    }
    Ok(found)
}

/// Reads the results files of `folder` (see [`find_results_files`]) into `evaluator`, after any
/// detections it already holds. Files are parsed in parallel; detections keep file order.
/// Returns the number of detections read.
pub fn read_results(
    evaluator: &mut VocEvaluator,
    folder: &Path,
    image_set: &str,
    missing: MissingClass,
) -> Result<usize, EvalError> {
    let files = find_results_files(folder, image_set, evaluator.classes(), missing)?;
    let shared: &VocEvaluator = evaluator;
    let parsed = parallel_map(&files, |_, path| match path {
        None => Ok(Vec::new()),
        Some(path) => parse_file(shared, path),
    });
    let mut count = 0;
    for (c, result) in parsed.into_iter().enumerate() {
        for (image, score, bbox) in result? {
            evaluator.push(c + 1, image, score, bbox);
            count += 1;
        }
    }
    Ok(count)
}

/// One parsed result line: image index, score, box.
type ParsedLine = (u32, f64, PixelBox);

fn parse_file(evaluator: &VocEvaluator, path: &Path) -> Result<Vec<ParsedLine>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::with_capacity(text.len() / 40);
    for (n, line) in text.lines().enumerate() {
        let mut tokens = line.split_ascii_whitespace();
        let Some(id) = tokens.next() else {
            continue; // blank line
        };
        let malformed = |reason: String| EvalError::MalformedLine {
            path: path.to_owned(),
            line: n + 1,
            reason,
            text: line.to_owned(),
        };
        let mut numbers = [0.0f64; 5];
        for (k, slot) in numbers.iter_mut().enumerate() {
            let token = tokens
                .next()
                .ok_or_else(|| malformed(format!("expected 6 fields, found {}", k + 1)))?;
            *slot = token
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| malformed(format!("field {} is not a finite number", k + 2)))?;
        }
        if tokens.next().is_some() {
            return Err(malformed("more than 6 fields".to_owned()));
        }
        let image = evaluator
            .image_index(id)
            .ok_or_else(|| EvalError::UnknownImage {
                path: Some(path.to_owned()),
                line: Some(n + 1),
                image_id: id.to_owned(),
            })?;
        let [score, x0, y0, x1, y1] = numbers;
        out.push((image, score, [x0, y0, x1, y1]));
    }
    Ok(out)
}
