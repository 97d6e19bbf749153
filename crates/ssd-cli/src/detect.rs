//! `ssd detect`: detections on image files, as JSON lines and annotated copies.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::Device;
use ssd_data::{ClassList, load_rgb};
use ssd_model::{Detector, ImageDetections, PostProcessConfig};

use crate::render::{Labelled, draw_detections, save_image_atomically};
use ssd_backend::Backend;

/// Arguments of `ssd detect`.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// Trained model: a checkpoint folder or `.bpk` from `ssd train`, or a PyTorch `.pth` in the
    /// amdegroot, torchvision (SSD300, SSDLite320), lufficc or NVIDIA (SSD300 v1.1) layout.
    #[arg(long)]
    pub trained_model: PathBuf,
    /// An image, a folder of images (`.jpg`, `.jpeg`, `.png`), or a list file of image paths
    /// (one per line, relative to the list's folder; `#` lines skipped).
    #[arg(long)]
    pub test_image: PathBuf,
    /// Take shard K of N (K from 0) of the images, in their stable order (every N-th from K):
    /// N processes on N machines split a job without talking to each other. Without it, a
    /// Slurm array job's `SLURM_ARRAY_TASK_ID` (less `SLURM_ARRAY_TASK_MIN`) of
    /// `SLURM_ARRAY_TASK_COUNT` is used; in a Kubernetes Indexed Job pass
    /// `--shard $(JOB_COMPLETION_INDEX)/N`.
    #[arg(long, value_name = "K/N", value_parser = ssd_data::jobs::Shard::parse)]
    pub shard: Option<ssd_data::jobs::Shard>,
    /// Append one JSON line per image to this file (flushed as each image is done) instead of
    /// printing them; a rerun with the same file skips the images it already holds, and a line
    /// torn by a killed run is redone. Annotated copies then only with `--draw`.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// With `--jsonl`: also write the annotated copies to `--output`.
    #[arg(long)]
    pub draw: bool,
    /// The post-processing thresholds.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Class list for a `.pth` with classes other than VOC's.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Where the annotated images go (`p_<name>.jpg`).
    #[arg(long, default_value = "results/images")]
    pub output: PathBuf,
    /// Backend (default: the first compiled in).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

/// The post-processing flags of `ssd detect`, `ssd serve` and `ssd export --postprocess`.
#[derive(Debug, Clone, clap::Args)]
pub struct ThresholdArgs {
    /// Lowest score to report, in [0, 1].
    #[arg(long, default_value_t = 0.2)]
    pub min_score: f32,
    /// Detections kept per image (best scores over all classes), at least 1.
    #[arg(long, default_value_t = 200)]
    pub top_k: usize,
    /// NMS IoU, in (0, 1]: a box overlapping a better one of its class by more is dropped (1
    /// keeps every box).
    #[arg(long, default_value_t = 0.45)]
    pub nms_overlap: f32,
}

impl ThresholdArgs {
    /// The post-processing of `--min-score`, `--top-k` and `--nms-overlap`; a value out of
    /// range is an error naming its flag.
    pub fn post_process(&self) -> anyhow::Result<PostProcessConfig> {
        let config = PostProcessConfig {
            min_score: self.min_score,
            top_k: self.top_k,
            nms_overlap: self.nms_overlap,
            ..PostProcessConfig::default()
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!(e.as_flag()))?;
        Ok(config)
    }
}

/// The backend's inference device.
pub fn inference_device(backend: Option<Backend>) -> anyhow::Result<Device> {
    let backend = Backend::chosen(backend)?;
    Ok(backend.device()?)
}

/// Loads `--trained-model` (with `--classes` when given) on the backend's device.
pub fn load_detector(
    path: &Path,
    classes: Option<&Path>,
    backend: Option<Backend>,
) -> anyhow::Result<Detector> {
    let classes = classes.map(ClassList::from_file).transpose()?;
    Ok(Detector::load_with_classes(
        path,
        classes,
        &inference_device(backend)?,
    )?)
}

/// Runs `ssd detect`: JSON lines on stdout, annotated images in `--output`. In a folder, an image
/// that cannot be read is reported and skipped; the command then fails at the end.
pub fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    let post = args.thresholds.post_process()?;
    let detector = load_detector(&args.trained_model, args.classes.as_deref(), args.backend)?
        .with_post_process(post);
    let files = ssd_data::jobs::job_inputs(&args.test_image)
        .with_context(|| format!("--test-image {}", args.test_image.display()))?;
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => ssd_data::jobs::Shard::from_slurm(|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!("shard from the environment: {e}"))?,
    };
    let several = files.len() > 1;
    let files = match shard {
        Some(shard) => {
            let all = files.len();
            let share = shard.select(files);
            eprintln!(
                "shard {}/{}: {} of {all} images",
                shard.index,
                shard.count,
                share.len()
            );
            share
        }
        None => files,
    };
    let mut log = match &args.jsonl {
        Some(path) => {
            // Appended to, never replaced; but never an input, a link or anything but a file.
            let inputs = [args.trained_model.as_path(), args.test_image.as_path()];
            ssd_data::output::check_output(path, true, inputs)?;
            Some(ssd_data::jobs::ResultsLog::open(path)?)
        }
        None => None,
    };
    let draw = log.is_none() || args.draw;
    let mut failed = 0;
    let mut written = 0;
    let mut skipped = 0;
    for (file, output) in files.iter().zip(output_names(&files, &args.output)) {
        let name = file.display().to_string();
        if log.as_ref().is_some_and(|l| l.done().contains(&name)) {
            skipped += 1;
            continue;
        }
        match annotate(&detector, file, draw.then_some(output.as_path())) {
            Ok(report) => {
                let line = serde_json::to_value(&report)?;
                match &mut log {
                    Some(log) => log.append(&[line])?,
                    None => println!("{line}"),
                }
                written += 1;
            }
            Err(e) if several => {
                eprintln!("skipped: {}", crate::error_line(&e));
                failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    match &args.jsonl {
        Some(path) => eprintln!(
            "{written} image(s) detected into {}{}",
            path.display(),
            if skipped > 0 {
                format!(" ({skipped} already there)")
            } else {
                String::new()
            }
        ),
        None => eprintln!("{written} image(s) annotated in {}", args.output.display()),
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be read (named above)",
            files.len()
        );
    }
    Ok(())
}

/// `output/p_<stem>.jpg` for each file, unique whatever the input names: files that share a
/// stem (`a.jpg`, `a.png`) get the extension in the name too (`p_a_jpg.jpg`, `p_a_png.jpg`), a
/// name still taken gets a number (`p_a_png_2.jpg`), and names are kept byte for byte (a Latin-1
/// `café.jpg` is not turned into the same replacement characters as `naïve.jpg`).
pub fn output_names(files: &[PathBuf], output: &Path) -> Vec<PathBuf> {
    let stem = |f: &PathBuf| f.file_stem().map_or_else(|| "image".into(), OsString::from);
    let stems: Vec<OsString> = files.iter().map(stem).collect();
    let mut taken = HashSet::new();
    files
        .iter()
        .zip(&stems)
        .map(|(file, s)| {
            let mut base = OsString::from("p_");
            base.push(s);
            if stems.iter().filter(|t| *t == s).count() > 1 {
                base.push("_");
                base.push(file.extension().unwrap_or_default());
            }
            let mut name = base.clone();
            let mut n = 1;
            while !taken.insert(name.clone()) {
                n += 1;
                name = base.clone();
                name.push(format!("_{n}"));
            }
            name.push(".jpg");
            output.join(name)
        })
        .collect()
}

/// Detects objects in `files` and writes the annotated copies (see [`output_names`]); returns
/// them. The first unreadable image is the error.
pub fn annotate_files(
    detector: &Detector,
    files: &[PathBuf],
    output: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let outputs = output_names(files, output);
    for (file, out) in files.iter().zip(&outputs) {
        annotate(detector, file, Some(out))?;
    }
    Ok(outputs)
}

/// Detects objects in `file` and, given an `output`, writes the annotated copy there; returns
/// the image's report.
fn annotate(
    detector: &Detector,
    file: &Path,
    output: Option<&Path>,
) -> anyhow::Result<ImageDetections> {
    let image = load_rgb(file)?;
    let size = [image.width(), image.height()];
    let found = detector.detect(std::slice::from_ref(&image))?;
    let report = detector.describe(&file.display().to_string(), size, &found[0]);
    let Some(output) = output else {
        return Ok(report);
    };
    let boxes: Vec<Labelled> = report
        .detections
        .iter()
        .map(|d| Labelled {
            bbox: d.bbox,
            class: d.label - 1,
            caption: format!("{} {:.2}", d.class, d.score),
        })
        .collect();
    let mut canvas = image;
    draw_detections(&mut canvas, &boxes);
    save_image_atomically(&canvas, output)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_are_unique() {
        let files: Vec<PathBuf> = ["d/a.jpg", "d/a.png", "d/a_png.jpg", "d/b.jpg"]
            .map(PathBuf::from)
            .to_vec();
        let names = output_names(&files, Path::new("out"));
        assert_eq!(
            names,
            [
                "out/p_a_jpg.jpg",
                "out/p_a_png.jpg",
                "out/p_a_png_2.jpg",
                "out/p_b.jpg"
            ]
            .map(PathBuf::from)
        );
    }

    /// Two Latin-1 names (`café.jpg`, `naïve.jpg` from an old archive) that are not UTF-8 keep
    /// their bytes, so their annotated copies do not overwrite each other.
    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_keep_their_bytes() {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let latin1 = |name: &[u8]| PathBuf::from(OsString::from_vec(name.to_vec()));
        let files = vec![latin1(b"d/caf\xe9.jpg"), latin1(b"d/na\xefve.jpg")];
        let names = output_names(&files, Path::new("out"));
        assert_eq!(
            names[0].file_name().map(OsStrExt::as_bytes),
            Some(&b"p_caf\xe9.jpg"[..])
        );
        assert_eq!(
            names[1].file_name().map(OsStrExt::as_bytes),
            Some(&b"p_na\xefve.jpg"[..])
        );
    }
}
