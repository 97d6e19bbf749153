//! The loss log of a run: a CSV file with one row per iteration
//! (`iteration,loss,loc,conf,lr,grad_norm`), appended as the run goes and continued by a
//! resumed run.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{StepStats, TrainError};

/// One row of the loss log: what a step reports of its loss ([`StepStats::point`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPoint {
    /// Iterations done (1-based: the row after the first step is 1).
    pub iteration: u64,
    /// Total loss `conf + alpha * loc`.
    pub loss: f64,
    /// Localisation part.
    pub loc: f64,
    /// Confidence part.
    pub conf: f64,
    /// Learning rate used (base group).
    pub lr: f64,
    /// Global L2 norm of the gradients (before clipping).
    pub grad_norm: f64,
}

impl From<&StepStats> for LossPoint {
    fn from(s: &StepStats) -> Self {
        s.point
    }
}

const CSV_HEADER: &str = "iteration,loss,loc,conf,lr,grad_norm";

/// A loss CSV being written: rows kept in memory (for plots) and appended to the file by
/// [`LossLog::flush`].
#[derive(Debug, Clone)]
pub struct LossLog {
    path: PathBuf,
    points: Vec<LossPoint>,
    written: usize,
}

impl LossLog {
    /// Opens the log at `path` for a run that starts after iteration `start`: the rows up to
    /// `start` are kept (a resumed run continues them), later ones and a torn last line (a run
    /// killed while appending) are dropped; the file is rewritten atomically.
    pub fn open(path: &Path, start: u64) -> Result<Self, TrainError> {
        let points = if start > 0 && path.exists() {
            read_rows(path, start)?
        } else {
            Vec::new()
        };
        let tmp = path.with_extension("csv.partial");
        let text: String = std::iter::once(format!("{CSV_HEADER}\n"))
            .chain(points.iter().map(csv_row))
            .collect();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(TrainError::io(path))?;
        Ok(Self {
            path: path.to_owned(),
            written: points.len(),
            points,
        })
    }

    /// Adds a row (written at the next [`LossLog::flush`]).
    pub fn push(&mut self, point: LossPoint) {
        self.points.push(point);
    }

    /// Appends the rows added since the last flush to the file.
    pub fn flush(&mut self) -> Result<(), TrainError> {
        let text: String = self.points[self.written..].iter().map(csv_row).collect();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(TrainError::io(&self.path))?;
        self.written = self.points.len();
        Ok(())
    }

    /// Every row so far, the resumed ones first.
    pub fn points(&self) -> &[LossPoint] {
        &self.points
    }

    /// The CSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_rows(path: &Path, up_to: u64) -> Result<Vec<LossPoint>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
    // A run killed while appending leaves a last line without its newline: not a row.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut out = Vec::new();
    for (n, line) in complete.lines().enumerate().skip(1) {
        let bad = || TrainError::LossLog {
            path: path.to_owned(),
            line: n + 1,
        };
        let f: Vec<f64> = line
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let [iteration, loss, loc, conf, lr, grad_norm] = f[..] else {
            return Err(bad());
        };
        if iteration as u64 <= up_to {
            out.push(LossPoint {
                iteration: iteration as u64,
                loss,
                loc,
                conf,
                lr,
                grad_norm,
            });
        }
    }
    Ok(out)
}

fn csv_row(p: &LossPoint) -> String {
    format!(
        "{},{},{},{},{},{}\n",
        p.iteration, p.loss, p.loc, p.conf, p.lr, p.grad_norm
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_continues_and_a_torn_last_line_is_dropped() {
        let dir = std::env::temp_dir().join(format!("ssd-loss-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("loss.csv");
        let points: Vec<LossPoint> = (1..=4)
            .map(|i| LossPoint {
                iteration: i,
                loss: 1.0 / i as f64,
                loc: 0.25,
                conf: 0.5,
                lr: 1e-3,
                grad_norm: 2.5,
            })
            .collect();
        let mut log = LossLog::open(&path, 0).expect("new log");
        log.push(points[0]);
        log.push(points[1]);
        log.flush().expect("flush");
        log.push(points[2]);
        log.push(points[3]);
        log.flush().expect("flush");
        assert_eq!(LossLog::open(&path, 10).expect("read").points(), points);
        assert_eq!(
            LossLog::open(&path, 3).expect("read").points(),
            &points[..3]
        );
        let mut text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 4, "header and the rows up to 3");
        text.push_str("4,0.2,0.1");
        std::fs::write(&path, text).expect("write");
        assert_eq!(
            LossLog::open(&path, 10).expect("torn line").points(),
            &points[..3]
        );
        std::fs::write(&path, format!("{CSV_HEADER}\n1,x,0,0,0,0\n")).expect("write");
        assert!(matches!(
            LossLog::open(&path, 10),
            Err(TrainError::LossLog { line: 2, .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
