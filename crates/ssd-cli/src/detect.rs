//! `ssd detect`: detections on image files, as JSON lines and annotated copies.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::Device;
use ssd_data::{ClassList, load_rgb};
use ssd_model::{Detector, PostProcessConfig};

use crate::backend::Backend;
use crate::render::{Labelled, draw_detections, save_image_atomically};

/// Arguments of `ssd detect`.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// Trained model: a checkpoint folder or `.bpk` from `ssd train`, or a PyTorch `.pth` in the
    /// amdegroot, torchvision or lufficc layout.
    #[arg(long)]
    pub trained_model: PathBuf,
    /// An image, or a folder of images (`.jpg`, `.jpeg`, `.png`).
    #[arg(long)]
    pub test_image: PathBuf,
    /// Lowest score to report and draw.
    #[arg(long, default_value_t = 0.2)]
    pub min_score: f32,
    /// Detections kept per image (best scores over all classes).
    #[arg(long, default_value_t = 200)]
    pub top_k: usize,
    /// NMS IoU.
    #[arg(long, default_value_t = 0.45)]
    pub nms_overlap: f32,
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

/// The backend's inference device.
pub fn inference_device(backend: Option<Backend>) -> anyhow::Result<Device> {
    let backend = match backend {
        Some(b) => b,
        None => Backend::default_compiled().context("no backend compiled into this binary")?,
    };
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

/// The images of `path`: the file itself, or a folder's images in name order.
pub fn image_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.exists() {
        bail!("--test-image {} not found", path.display());
    }
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("--test-image {}: no .jpg/.jpeg/.png files", path.display());
    }
    Ok(files)
}

/// Runs `ssd detect`: JSON lines on stdout, annotated images in `--output`. In a folder, an image
/// that cannot be read is reported and skipped; the command then fails at the end.
pub fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    let detector = load_detector(&args.trained_model, args.classes.as_deref(), args.backend)?
        .with_post_process(PostProcessConfig {
            score_threshold: args.min_score,
            max_detections: args.top_k,
            nms_iou: args.nms_overlap,
            ..PostProcessConfig::default()
        });
    let files = image_files(&args.test_image)?;
    let mut failed = 0;
    let mut written = 0;
    for (file, output) in files.iter().zip(output_names(&files, &args.output)) {
        match annotate(&detector, file, &output, true) {
            Ok(()) => written += 1,
            Err(e) if files.len() > 1 => {
                eprintln!("skipped: {e:#}");
                failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    eprintln!("{written} image(s) annotated in {}", args.output.display());
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be read (named above)",
            files.len()
        );
    }
    Ok(())
}

/// `output/p_<stem>.jpg` for each file; files that share a stem (`a.jpg`, `a.png`) get the
/// extension in the name too (`p_a_jpg.jpg`, `p_a_png.jpg`), so none overwrites another.
pub fn output_names(files: &[PathBuf], output: &Path) -> Vec<PathBuf> {
    let stem = |f: &PathBuf| {
        f.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image")
            .to_owned()
    };
    let stems: Vec<String> = files.iter().map(stem).collect();
    files
        .iter()
        .zip(&stems)
        .map(|(file, s)| {
            let shared = stems.iter().filter(|t| *t == s).count() > 1;
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
            match shared {
                true => output.join(format!("p_{s}_{ext}.jpg")),
                false => output.join(format!("p_{s}.jpg")),
            }
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
        annotate(detector, file, out, false)?;
    }
    Ok(outputs)
}

/// Detects objects in `file`, writes the annotated copy to `output` and, with `print`, one JSON
/// line on stdout.
fn annotate(detector: &Detector, file: &Path, output: &Path, print: bool) -> anyhow::Result<()> {
    let image = load_rgb(file)?;
    let size = [image.width(), image.height()];
    let found = detector.detect(std::slice::from_ref(&image))?;
    let report = detector.describe(&file.display().to_string(), size, &found[0]);
    if print {
        println!("{}", serde_json::to_string(&report)?);
    }
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
    save_image_atomically(&canvas, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_are_unique() {
        let files: Vec<PathBuf> = ["d/a.jpg", "d/a.png", "d/b.jpg"]
            .map(PathBuf::from)
            .to_vec();
        let names = output_names(&files, Path::new("out"));
        assert_eq!(
            names,
            ["out/p_a_jpg.jpg", "out/p_a_png.jpg", "out/p_b.jpg"].map(PathBuf::from)
        );
    }
}
