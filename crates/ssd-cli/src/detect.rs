//! `ssd detect`: detections on image files, as JSON lines and annotated copies.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::Device;
use ssd_data::{ClassList, load_rgb};
use ssd_model::{
    Detector, Engine, EngineKind, ImageDetections, OrtOptions, OrtProvider, PostProcessConfig,
    Precision, SsdConfig,
};

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
    /// Images per batch of the network, at least 1.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Threads decoding and resizing images while the network runs, 1 to 256.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// What runs the network.
    #[command(flatten)]
    pub inference: InferenceArgs,
}

/// The flags that choose what runs the network, shared by `ssd detect`, `ssd eval` and
/// `ssd serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct InferenceArgs {
    /// Backend (default: the first compiled in). With `--engine onnxruntime` it runs only the
    /// post-processing.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// What runs the network: `burn` (on `--backend`) or `onnxruntime` (ONNX Runtime's shared
    /// library, 1.24 or newer: `--onnxruntime-lib`, else ORT_DYLIB_PATH, else the install
    /// scripts' copy under $SSD_CACHE, else the system's `libonnxruntime.so`). With
    /// `onnxruntime` the model may also be an `.onnx` file `ssd export` wrote.
    #[arg(long, value_enum, default_value = "burn")]
    pub engine: EngineKind,
    /// Threads of one inference (default: ONNX Runtime's, one per core; for Burn, Flex's
    /// thread pool).
    #[arg(long)]
    pub threads: Option<usize>,
    /// ONNX Runtime's execution provider (`openvino`, `cuda` and `tensorrt` need the library of
    /// PyPI's onnxruntime-openvino or onnxruntime-gpu).
    #[arg(long, value_enum, default_value = "cpu")]
    pub provider: OrtProvider,
    /// Precision of ONNX Runtime's matrix products: `bf16` runs them through OpenVINO in
    /// bfloat16 where the CPU has bf16 matrix units (Intel AMX, AVX512-BF16), fp32 elsewhere.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: Precision,
    /// ONNX Runtime's shared library (`libonnxruntime.so.1.*`).
    #[arg(long, value_name = "FILE")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// The network of a PyTorch `.pth` whose keys do not say it (a state dict in ssd's own
    /// names, as `tools/train_reference.py` writes; another layout of a network other than
    /// SSD300/SSD512 with their usual boxes): a preset name or a model configuration file, as
    /// `ssd train --model` takes. Its classes are `--classes`, else VOC's 20.
    #[arg(long)]
    pub model: Option<String>,
}

impl InferenceArgs {
    /// The engine these flags ask for; ONNX Runtime's flags without `--engine onnxruntime` are
    /// an error naming them.
    pub fn engine(&self) -> anyhow::Result<Engine> {
        match self.engine {
            EngineKind::Burn => {
                let ort_only = [
                    (self.provider != OrtProvider::Cpu, "--provider"),
                    (self.precision != Precision::Fp32, "--precision"),
                    (self.onnxruntime_lib.is_some(), "--onnxruntime-lib"),
                ];
                if let Some((_, flag)) = ort_only.iter().find(|(set, _)| *set) {
                    bail!("{flag} is a setting of ONNX Runtime: add --engine onnxruntime");
                }
                Ok(Engine::Burn)
            }
            EngineKind::Onnxruntime => Ok(Engine::OnnxRuntime(OrtOptions {
                library: self.onnxruntime_lib.clone(),
                threads: self.threads,
                provider: self.provider,
                precision: self.precision,
            })),
        }
    }

    /// `--threads` for Burn's CPU backend: the size of the thread pool Flex computes on (set
    /// once, before the first tensor operation).
    pub fn apply_threads(&self) -> anyhow::Result<()> {
        if self.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        if let (Some(threads), EngineKind::Burn) = (self.threads, self.engine) {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build_global()
                .map_err(|e| anyhow::anyhow!("--threads {threads}: {e}"))?;
        }
        Ok(())
    }

    /// Loads `--trained-model` (with `--classes` when given) on the engine and backend these
    /// flags name.
    pub fn load(&self, path: &Path, classes: Option<&Path>) -> anyhow::Result<Detector> {
        let engine = self.engine()?;
        self.apply_threads()?;
        let classes = classes.map(ClassList::from_file).transpose()?;
        let device = inference_device(self.backend)?;
        let Some(model) = &self.model else {
            return Ok(Detector::load_on(path, classes, &device, &engine)?);
        };
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt")
        ) {
            bail!(
                "--model names the network of a PyTorch .pth; {} carries its own",
                path.display()
            );
        }
        let num_classes = classes
            .as_ref()
            .map_or(21, ClassList::num_classes_with_background);
        let config =
            SsdConfig::named(model, num_classes).with_context(|| format!("--model {model}"))?;
        Ok(Detector::load_pytorch_as(path, config, classes, &device)?.into_engine(&engine)?)
    }

    /// What runs the network, for reports: `flex`, or `onnxruntime cpu fp32 (post-processing
    /// on flex)`.
    pub fn describe(&self, detector: &Detector) -> anyhow::Result<String> {
        let backend = Backend::chosen(self.backend)?;
        Ok(match self.engine {
            EngineKind::Burn => backend.name().to_owned(),
            EngineKind::Onnxruntime => format!(
                "{} (post-processing on {})",
                detector.engine(),
                backend.name()
            ),
        })
    }
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

/// Loads `--trained-model` (with `--classes` when given) on the backend's device, run by Burn.
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

/// Runs `ssd detect`: JSON lines on stdout (or appended to `--jsonl`), annotated images in
/// `--output`. Images are decoded and resized by `--workers` threads, batch after batch in input
/// order, while the network runs the batch before. An image that cannot be read is reported and
/// skipped when there are several; the command then fails at the end.
pub fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    let post = args.thresholds.post_process()?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if !(1..=256).contains(&args.workers) {
        bail!("--workers must be 1 to 256, not {}", args.workers);
    }
    let detector = args
        .inference
        .load(&args.trained_model, args.classes.as_deref())?
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
    let outputs = output_names(&files, &args.output);
    let todo: Vec<(PathBuf, PathBuf)> = files
        .iter()
        .zip(outputs)
        .filter(|(file, _)| {
            let name = file.display().to_string();
            !log.as_ref().is_some_and(|l| l.done().contains(&name))
        })
        .map(|(file, output)| (file.clone(), output))
        .collect();
    let skipped = files.len() - todo.len();
    let bar = log
        .as_ref()
        .map(|_| crate::eval::progress_bar(todo.len() as u64, "detecting"));
    let mut failed = 0;
    let mut written = 0;
    let batches: Vec<&[(PathBuf, PathBuf)]> = todo.chunks(args.batch_size).collect();
    let transform = detector.preprocessor();
    let outcome = std::thread::scope(|scope| -> anyhow::Result<()> {
        // Worker w prepares batches w, w + W, ...; one batch waits in each worker's channel.
        let workers = args.workers.min(batches.len().max(1));
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (sender, receiver) = std::sync::mpsc::sync_channel(1);
            receivers.push(receiver);
            let batches = &batches;
            scope.spawn(move || {
                for batch in batches.iter().skip(w).step_by(workers) {
                    let prepared: Vec<anyhow::Result<Prepared>> = batch
                        .iter()
                        .map(|(file, _)| prepare(transform, file, draw))
                        .collect();
                    if sender.send(prepared).is_err() {
                        return; // the consumer stopped on an error
                    }
                }
            });
        }
        for (b, batch) in batches.iter().enumerate() {
            let prepared = receivers[b % workers]
                .recv()
                .map_err(|_| anyhow::anyhow!("an image decoding thread stopped"))?;
            let mut ready = Vec::with_capacity(batch.len());
            let mut pixels = Vec::new();
            for ((file, output), item) in batch.iter().zip(prepared) {
                match item {
                    Ok(mut item) => {
                        pixels.append(&mut item.pixels);
                        ready.push((file, output, item));
                    }
                    Err(e) if several => {
                        let line = format!("skipped: {}", crate::error_line(&e));
                        match &bar {
                            Some(bar) => bar.suspend(|| eprintln!("{line}")),
                            None => eprintln!("{line}"),
                        }
                        failed += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            let sizes: Vec<[u32; 2]> = ready.iter().map(|(_, _, i)| i.size).collect();
            let configs = vec![post; sizes.len()];
            let found = detector.detect_preprocessed(pixels, &sizes, &configs)?;
            let mut lines = Vec::with_capacity(ready.len());
            for ((file, output, item), found) in ready.into_iter().zip(found) {
                let report = detector.describe(&file.display().to_string(), item.size, &found);
                if let Some(image) = item.image {
                    draw_report(image, &report, output)?;
                }
                lines.push(serde_json::to_value(&report)?);
            }
            written += lines.len();
            match &mut log {
                Some(log) => log.append(&lines)?,
                None => {
                    for line in &lines {
                        println!("{line}");
                    }
                }
            }
            if let Some(bar) = &bar {
                bar.inc(batch.len() as u64);
            }
        }
        Ok(())
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    outcome?;
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

/// An image ready for the network: its input, original size and, to draw on, the image.
struct Prepared {
    pixels: Vec<f32>,
    size: [u32; 2],
    image: Option<image::RgbImage>,
}

/// Decodes and resizes `file` for the network.
fn prepare(
    transform: &ssd_data::Augment,
    file: &Path,
    keep_image: bool,
) -> anyhow::Result<Prepared> {
    let image = load_rgb(file)?;
    Ok(Prepared {
        pixels: transform.resize(&image),
        size: [image.width(), image.height()],
        image: keep_image.then_some(image),
    })
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
        let image = load_rgb(file)?;
        let size = [image.width(), image.height()];
        let found = detector.detect(std::slice::from_ref(&image))?;
        let report = detector.describe(&file.display().to_string(), size, &found[0]);
        draw_report(image, &report, out)?;
    }
    Ok(outputs)
}

/// Draws `report`'s boxes on `image` and saves it to `output`.
fn draw_report(
    mut image: image::RgbImage,
    report: &ImageDetections,
    output: &Path,
) -> anyhow::Result<()> {
    let boxes: Vec<Labelled> = report
        .detections
        .iter()
        .map(|d| Labelled {
            bbox: d.bbox,
            class: d.label - 1,
            caption: format!("{} {:.2}", d.class, d.score),
        })
        .collect();
    draw_detections(&mut image, &boxes);
    save_image_atomically(&image, output)?;
    Ok(())
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
