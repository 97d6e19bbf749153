//! `ssd detect` and the detection pass of `ssd eval --trained-model`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Tensor, TensorData};
use ssd_data::{Augment, SampleRng, SsdBatcher, SsdDataset, VocDataset, load_rgb};
use ssd_eval::{Detection as EvalDetection, VocEvaluator};
use ssd_model::{PostProcessConfig, PostProcessor};

use crate::backend::Backend;
use crate::batches::{BatchPlan, Prefetcher};
use crate::model_io::{TrainedModel, load_trained};
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
pub fn inference_device(backend: Option<Backend>) -> anyhow::Result<(Backend, Device)> {
    let backend = match backend {
        Some(b) => b,
        None => Backend::default_compiled().context("no backend compiled into this binary")?,
    };
    Ok((backend, backend.device()?))
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

/// Runs `ssd detect`: JSON lines on stdout, annotated images in `--output`.
pub fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    let (_, device) = inference_device(args.backend)?;
    let trained = load_trained(&args.trained_model, args.classes.as_deref(), &device)?;
    let files = image_files(&args.test_image)?;
    let post = PostProcessConfig {
        score_threshold: args.min_score,
        max_detections: args.top_k,
        nms_iou: args.nms_overlap,
        ..PostProcessConfig::default()
    };
    let written = detect_files(&trained, &files, &post, &args.output, &device, true)?;
    eprintln!(
        "{} image(s) annotated in {}",
        written.len(),
        args.output.display()
    );
    Ok(())
}

/// Detects objects in `files`, writes `p_<stem>.jpg` for each into `output` and, with `print`,
/// one JSON line per image on stdout. Returns the written images.
pub fn detect_files(
    trained: &TrainedModel,
    files: &[PathBuf],
    post: &PostProcessConfig,
    output: &Path,
    device: &Device,
    print: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let size = trained.config.input_size() as u32;
    let transform = Augment::eval(size);
    let priors = trained.config.priors.priors()?;
    let processor = PostProcessor::new(priors, *post);
    let mut written = Vec::new();
    for file in files {
        let image = load_rgb(file)?;
        let (w, h) = image.dimensions();
        let out = transform.apply(image.clone(), &[], &[], &mut SampleRng::new(0));
        let input = Tensor::<4>::from_data(
            TensorData::new(out.pixels, [1, 3, size as usize, size as usize]),
            device,
        );
        let (loc, conf) = trained.model.forward(input);
        let detections = processor
            .detect(loc, conf, &[[w, h]])?
            .into_iter()
            .next()
            .unwrap_or_default();
        let name = |label: usize| trained.classes.name(label).unwrap_or("?").to_owned();
        if print {
            let list: Vec<serde_json::Value> = detections
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "class": name(d.label),
                        "label": d.label,
                        "score": d.score,
                        "bbox": d.bbox,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "image": file.display().to_string(), "width": w,
                    "height": h, "detections": list })
            );
        }
        let boxes: Vec<Labelled> = detections
            .iter()
            .map(|d| Labelled {
                bbox: d.bbox,
                class: d.label - 1,
                caption: format!("{} {:.2}", name(d.label), d.score),
            })
            .collect();
        let mut canvas = image;
        draw_detections(&mut canvas, &boxes);
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
        let path = output.join(format!("p_{stem}.jpg"));
        save_image_atomically(&canvas, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// Runs the model over every image of `voc` with `post` settings and adds the detections (VOC's
/// 1-based pixels) to a new evaluator. Shows a progress bar.
pub fn detect_dataset(
    trained: &TrainedModel,
    voc: &Arc<VocDataset>,
    post: &PostProcessConfig,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> anyhow::Result<VocEvaluator> {
    let size = trained.config.input_size() as u32;
    let dataset = SsdDataset::eval(Arc::clone(voc), size);
    let plan = BatchPlan {
        len: voc.len(),
        batch_size,
        shuffle: None,
        keep_partial: true,
    };
    let batches = plan.batches_per_epoch();
    let processor = PostProcessor::new(trained.config.priors.priors()?, *post);
    let mut evaluator = VocEvaluator::from_dataset(voc);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(voc.len() as u64),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "detecting {bar:30} {pos}/{len} images [{elapsed_precise} < {eta_precise}]",
        )
        .expect("a valid template"),
    );
    for next in Prefetcher::new(dataset, plan, 0, batches, workers) {
        let (_, _, items) = next?;
        let batch = SsdBatcher.batch(items, device);
        let (loc, conf) = trained.model.forward(batch.images);
        let found = processor.detect(loc, conf, &batch.original_sizes)?;
        for (id, dets) in batch.image_ids.iter().zip(found) {
            let dets: Vec<EvalDetection> = dets
                .iter()
                .map(|d| EvalDetection {
                    label: d.label,
                    score: f64::from(d.score),
                    bbox: d.bbox.map(|v| f64::from(v) + 1.0),
                })
                .collect();
            evaluator.add(id, &dets)?;
        }
        bar.inc(batch.image_ids.len() as u64);
    }
    bar.finish_and_clear();
    Ok(evaluator)
}
