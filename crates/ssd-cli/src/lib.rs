//! The `ssd` command line: a thin client of the library crates (`ssd-train` trains and
//! evaluates, `ssd-model`'s `Detector` detects). What lives here: arguments to typed settings,
//! backend selection, printing, progress bars, drawing and plots.
//!
//! - [`train`]: flags and config file to `ssd_train` settings; the console of a run (progress
//!   bar, log lines, loss CSV and plot, Ctrl-C).
//! - [`detect`]: detection on image files (annotated copies, JSON lines).
//! - [`eval`]: VOC mAP of a trained model or of devkit result files.
//! - [`export`]: a trained model as an ONNX file.
//! - [`serve`]: a trained model over HTTP (configures `ssd-serve`).
//! - [`quickstart`]: synthetic data, a small model trained on it, its mAP and pictures.
//! - [`track`]: detection and tracking on video (annotated video, MOTChallenge results, JSON
//!   lines).
//!
//! `--backend flex|tch|wgpu|cuda` becomes a Burn device in `ssd-backend`.
//!
//! Model and geometry logic never live here (see `ssd-model`, `ssd-core`).

pub mod detect;
pub mod eval;
pub mod export;
pub mod interrupt;
pub mod quickstart;
pub mod render;
pub mod serve;
pub mod track;
pub mod train;

/// An error as one line: its message and its causes, each cause once (a cause whose text the
/// message already quotes, such as an I/O error inside a file error, is not repeated).
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1).map(ToString::to_string) {
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}
