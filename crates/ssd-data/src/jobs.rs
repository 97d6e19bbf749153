//! Detection jobs over many images: the inputs of a job (an image, a folder, or a list file of
//! paths) in a stable order, a deterministic share of them for one of N processes that do not
//! talk to each other ([`Shard`]), and a JSON-lines results file that a rerun resumes
//! ([`ResultsLog`]): the images it already holds are skipped, and a line torn by a killed process
//! is dropped rather than breaking the file.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::DataError;

/// File extensions taken as images in a folder (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The images of a job, in a stable order: an image file itself; a folder's images
/// ([`IMAGE_EXTENSIONS`], not recursive) sorted by path; or a list file, one path per line (how
/// millions of images are handed over), relative paths taken from the list file's folder, blank
/// lines and lines starting with `#` skipped, order kept. The images themselves are not opened
/// here: one that is missing or corrupt is the detection pass's to report.
pub fn job_inputs(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| DataError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_image(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataError::NoImages {
                path: path.to_owned(),
            });
        }
        return Ok(files);
    }
    if !path.exists() {
        return Err(DataError::MissingImage {
            path: path.to_owned(),
        });
    }
    if is_image(path) {
        return Ok(vec![path.to_owned()]);
    }
    let base = path.parent().unwrap_or(Path::new(""));
    let file = File::open(path).map_err(|e| DataError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    let mut files = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DataError::BadImageList {
            path: path.to_owned(),
            line: i + 1,
            reason: format!("not a line of text: {e}"),
        })?;
        let entry = line.trim_end_matches('\r');
        if entry.trim().is_empty() || entry.starts_with('#') {
            continue;
        }
        if entry.contains('\0') {
            return Err(DataError::BadImageList {
                path: path.to_owned(),
                line: i + 1,
                reason: "a NUL byte in the path".to_owned(),
            });
        }
        files.push(base.join(entry));
    }
    if files.is_empty() {
        return Err(DataError::NoImages {
            path: path.to_owned(),
        });
    }
    Ok(files)
}

/// One of `count` processes splitting a job: shard `index` (0-based) takes the inputs at
/// positions `index, index + count, index + 2 count, ...` of the job's stable order, so the
/// shards are disjoint, cover every input, differ in size by at most one, and depend on nothing
/// but the input list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// How many shards split the job.
    pub count: usize,
}

impl Shard {
    /// `K/N`: shard `K` (0-based, as Kubernetes' `JOB_COMPLETION_INDEX`) of `N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: expected K/N (shard K of N, K from 0)"))?;
        let number = |s: &str, what: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{text:?}: {what} {s:?} is not a whole number"))
        };
        let shard = Self {
            index: number(k, "K")?,
            count: number(n, "N")?,
        };
        if shard.count == 0 || shard.index >= shard.count {
            return Err(format!(
                "{text:?}: K must be in 0..N and N at least 1 (shard K of N, K from 0)"
            ));
        }
        Ok(shard)
    }

    /// The shard of a Slurm array job, when the environment (`lookup`) has one:
    /// `SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN` (0 when unset) of
    /// `SLURM_ARRAY_TASK_COUNT`. (A Kubernetes Indexed Job does not tell a pod the number of
    /// completions: its manifest passes `--shard $(JOB_COMPLETION_INDEX)/N`.)
    pub fn from_slurm(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let Some(id) = lookup("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let number = |name: &str, value: &str| {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("{name}={value:?} is not a whole number"))
        };
        let id = number("SLURM_ARRAY_TASK_ID", &id)?;
        let min = match lookup("SLURM_ARRAY_TASK_MIN") {
            Some(v) => number("SLURM_ARRAY_TASK_MIN", &v)?,
            None => 0,
        };
        let count = lookup("SLURM_ARRAY_TASK_COUNT")
            .ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
        let count = number("SLURM_ARRAY_TASK_COUNT", &count)?;
        let index = id.checked_sub(min).ok_or_else(|| {
            format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
        })?;
        Self::parse(&format!("{index}/{count}")).map(Some)
    }

    /// This shard's share of `inputs` (in their order).
    pub fn select<T>(&self, inputs: Vec<T>) -> Vec<T> {
        inputs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, x)| x)
            .collect()
    }
}

/// A JSON-lines results file, one object per image with its `"image"` key, written as results
/// come and resumed by a rerun.
///
/// Opening an existing file reads the images it holds; a last line without its newline (a
/// process killed while writing it) is cut off, so the rerun redoes that image and the file
/// never holds a torn line. Each [`ResultsLog::append`] writes whole lines and flushes them: a
/// process killed at any moment leaves complete lines only, once the next open has cut the
/// partial one.
#[derive(Debug)]
pub struct ResultsLog {
    file: File,
    path: PathBuf,
    done: BTreeSet<String>,
}

impl ResultsLog {
    /// Opens (or creates) `path` for appending; see the type's documentation. A complete line
    /// that is not a JSON object with a string `"image"` is an error naming the line.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let io = |e: std::io::Error| DataError::Io {
            path: path.to_owned(),
            source: e,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut done = BTreeSet::new();
        let mut complete = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(io)?;
            if read == 0 || line.last() != Some(&b'\n') {
                break;
            }
            number += 1;
            let image = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("image")?.as_str().map(str::to_owned))
                .ok_or_else(|| DataError::BadImageList {
                    path: path.to_owned(),
                    line: number,
                    reason: "not a JSON object with a string \"image\"".to_owned(),
                })?;
            done.insert(image);
            complete += read as u64;
        }
        let length = file.seek(SeekFrom::End(0)).map_err(io)?;
        if length > complete {
            file.set_len(complete).map_err(io)?;
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            done,
        })
    }

    /// The images the file already holds (their `"image"` values).
    pub fn done(&self) -> &BTreeSet<String> {
        &self.done
    }

    /// Appends one line per value (each serialised on one line) and flushes.
    pub fn append(&mut self, results: &[serde_json::Value]) -> Result<(), DataError> {
        let mut text = String::new();
        for value in results {
            text.push_str(&value.to_string());
            text.push('\n');
            if let Some(image) = value.get("image").and_then(|v| v.as_str()) {
                self.done.insert(image.to_owned());
            }
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| DataError::Io {
                path: self.path.clone(),
                source: e,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ssd-jobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    #[test]
    fn shards_are_disjoint_cover_everything_and_balance() {
        let inputs: Vec<usize> = (0..103).collect();
        for count in 1..8 {
            let mut seen = Vec::new();
            let mut sizes = Vec::new();
            for index in 0..count {
                let share = Shard { index, count }.select(inputs.clone());
                sizes.push(share.len());
                seen.extend(share);
            }
            seen.sort();
            assert_eq!(seen, inputs, "{count} shards");
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{sizes:?}");
        }
    }

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
        for bad in ["8/8", "1/0", "x/3", "3", "-1/3", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(Shard::from_slurm(env(&[])), Ok(None));
        assert_eq!(
            Shard::from_slurm(env(&[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "8")
            ])),
            Ok(Some(Shard { index: 4, count: 8 }))
        );
        assert!(Shard::from_slurm(env(&[("SLURM_ARRAY_TASK_ID", "5")])).is_err());
        assert!(
            Shard::from_slurm(env(&[
                ("SLURM_ARRAY_TASK_ID", "9"),
                ("SLURM_ARRAY_TASK_COUNT", "8")
            ]))
            .is_err()
        );
    }

    #[test]
    fn list_files_keep_their_order_and_folders_sort() {
        let dir = scratch("list");
        for name in ["b.jpg", "a.PNG", "notes.txt"] {
            std::fs::write(dir.join(name), b"x").expect("file");
        }
        assert_eq!(
            job_inputs(&dir).expect("folder"),
            vec![dir.join("a.PNG"), dir.join("b.jpg")]
        );
        let list = dir.join("list.txt");
        std::fs::write(&list, "# images\nb.jpg\n\n/abs/c.jpg\r\na.PNG\n").expect("list");
        assert_eq!(
            job_inputs(&list).expect("list"),
            vec![
                dir.join("b.jpg"),
                PathBuf::from("/abs/c.jpg"),
                dir.join("a.PNG")
            ]
        );
        std::fs::write(&list, "# nothing\n").expect("list");
        assert!(matches!(job_inputs(&list), Err(DataError::NoImages { .. })));
        std::fs::write(&list, [b'a', 0xff, b'\n'].as_slice()).expect("list");
        let err = job_inputs(&list).expect_err("not UTF-8");
        assert!(err.to_string().contains("list.txt:1:"), "{err}");
        assert!(matches!(
            job_inputs(&dir.join("missing")),
            Err(DataError::MissingImage { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_rest_resumes() {
        let dir = scratch("log");
        let path = dir.join("results.jsonl");
        let mut log = ResultsLog::open(&path).expect("new file");
        assert!(log.done().is_empty());
        log.append(&[
            serde_json::json!({"image": "a.jpg", "detections": []}),
            serde_json::json!({"image": "b.jpg", "detections": []}),
        ])
        .expect("append");
        drop(log);
        // A process killed while writing the third line.
        let mut file = OpenOptions::new().append(true).open(&path).expect("file");
        file.write_all(b"{\"image\": \"c.jp").expect("torn line");
        drop(file);
        let mut log = ResultsLog::open(&path).expect("resume");
        let done: Vec<&str> = log.done().iter().map(String::as_str).collect();
        assert_eq!(done, ["a.jpg", "b.jpg"]);
        log.append(&[serde_json::json!({"image": "c.jpg", "detections": []})])
            .expect("append");
        let text = std::fs::read_to_string(&path).expect("text");
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
        // A complete line that is not a result names its line.
        std::fs::write(&path, "{\"image\": \"a.jpg\"}\n[1, 2]\n").expect("file");
        let err = ResultsLog::open(&path).expect_err("not a result");
        assert!(err.to_string().contains("results.jsonl:2:"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
