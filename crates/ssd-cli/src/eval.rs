//! `ssd eval`: a trained model's detections (`--trained-model`, the test settings) or a results
//! file of any tool (`--detections`) scored against a dataset of either format, with either
//! metric: VOC07/area AP (the default for VOC data) or COCO's AP (the default for COCO data).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ssd_data::{ClassList, DataLocation, DetectionDataset};
use ssd_evaluation::{
    DatasetDetections, EvalOptions, IouRule, MetricChoice, MetricName, MissingClass,
    detect_dataset, results_destination, test_post_process,
};

use crate::detect::InferenceArgs;

/// Arguments of `ssd eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Dataset root(s), comma-separated: VOC roots (VOCdevkit/VOC2007), COCO roots (holding
    /// annotations/instances_<datanames>.json) or COCO .json files.
    #[arg(long, value_delimiter = ',', required = true)]
    pub dataroot: Vec<PathBuf>,
    /// Image set (VOC `ImageSets/Main/<name>.txt`) or annotation set (COCO
    /// `instances_<name>.json`).
    #[arg(long, default_value = "test")]
    pub datanames: String,
    /// Folder of a COCO file's images, when they are not where the layout puts them.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Results to score: for VOC data a folder of devkit result files
    /// `<comp>_det_<set>_<class>.txt` (1-based pixels), for COCO data a COCO results file
    /// `[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`. With `--trained-model`:
    /// where the model's results are written (default `results/det`, for COCO
    /// `results/det/detections_<set>.json`); existing files are refused without --overwrite,
    /// and the command's inputs always.
    #[arg(long)]
    pub detections: Option<PathBuf>,
    /// With `--trained-model`: replace existing results files (never an input of the command,
    /// nor anything but a regular file).
    #[arg(long)]
    pub overwrite: bool,
    /// Evaluate this model (checkpoint folder, `.bpk` or PyTorch `.pth`): detection over the
    /// dataset with the test settings (score 0.01, top 400 per class, NMS 0.45, 200 per image for
    /// VOC; 100 per image for COCO), then the results files and the metric.
    #[arg(long)]
    pub trained_model: Option<PathBuf>,
    /// Images per batch (with `--trained-model`), at least 1.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Data loading threads (with `--trained-model`), 1 to 256.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// What runs the network (with `--trained-model`).
    #[command(flatten)]
    pub inference: InferenceArgs,
    /// `voc07` (11-point, the paper's), `area` (VOC2010+) or `coco` [default: the dataset
    /// format's own: voc07 for VOC data, coco for COCO data].
    #[arg(long, value_enum)]
    pub metric: Option<MetricName>,
    /// VOC metrics: IoU comparison, `ge` (>=, the devkit's) or `gt` (>, py-faster-rcnn's).
    #[arg(long, default_value = "ge")]
    pub iou_rule: IouRule,
    /// VOC metrics: IoU a detection needs to match a ground truth, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub iou_threshold: f64,
    /// Class list for VOC data, one name per line (default: the 20 VOC classes; a model's own
    /// with `--trained-model`).
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// With devkit result files: a class without a results file has no detections (else it is
    /// an error naming the file expected).
    #[arg(long)]
    pub missing_as_empty: bool,
    /// Print JSON (`{"metric", "map", "ap": {class: ap}}`, plus `"coco": {"AP", ...}` for the
    /// COCO metric) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Draw the evaluation into this folder: `pr_curves.png` (precision-recall per class at IoU
    /// 0.5) and, for the COCO metric, `ap_by_iou.png`.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Runs `ssd eval`; prints the table (or JSON) to stdout.
pub fn eval_results(args: &EvalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    // Every number is checked before anything is loaded, whichever mode uses it.
    let choice = MetricChoice {
        name: args.metric,
        iou_threshold: args.iou_threshold,
        iou_rule: args.iou_rule,
    };
    choice.validate()?;
    let options = EvalOptions {
        batch_size: args.batch_size,
        workers: args.workers,
    };
    options.validate()?;
    let location = DataLocation {
        roots: args.dataroot.clone(),
        name: args.datanames.clone(),
        images: args.images.clone(),
    };
    let format = location.format()?;
    let (found, count) = match &args.trained_model {
        Some(model) => {
            let detector = args.inference.load(model, args.classes.as_deref())?;
            let post = test_post_process(format, *detector.post_process());
            let detector = detector.with_post_process(post);
            let dataset = Arc::new(DetectionDataset::open_at(
                &location,
                Some(detector.classes().clone()),
                true,
            )?);
            // Where the results go is checked before the detection pass.
            let inputs = [model.as_path()];
            let to = args.detections.as_deref();
            results_destination(&dataset, to, args.overwrite, &inputs)?;
            let bar = progress_bar(dataset.len() as u64, "detecting");
            let found = detect_dataset(&detector, &dataset, &options, |done| {
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            let written = found.write_results(to, args.overwrite, &inputs)?;
            if !args.json {
                println!("results in {}", written.display());
            }
            let count = found.num_detections();
            (found, count)
        }
        None => {
            let Some(path) = &args.detections else {
                anyhow::bail!("give --trained-model MODEL or --detections FILE|FOLDER");
            };
            let classes = args
                .classes
                .as_deref()
                .map(ClassList::from_file)
                .transpose()?;
            let dataset = Arc::new(DetectionDataset::open_at(&location, classes, false)?);
            let missing = if args.missing_as_empty {
                MissingClass::NoDetections
            } else {
                MissingClass::Error
            };
            DatasetDetections::read_results(dataset, path, missing)?
        }
    };
    let metric = choice.metric(format);
    let read = start.elapsed();
    let report = found.evaluate(&metric)?;
    let evaluated = start.elapsed() - read;
    if let Some(dir) = &args.plot {
        for file in crate::render::plot_evaluation(&report, dir)? {
            eprintln!("plot written: {}", file.display());
        }
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
        println!(
            "{count} detections on {} images ({}), {} metric; read in {:.2?}, evaluated in {:.2?}",
            found.dataset().len(),
            args.datanames,
            metric.name(),
            read,
            evaluated
        );
    }
    Ok(())
}

/// A progress bar over `len` images on stderr.
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    let template =
        format!("{what} {{bar:30}} {{pos}}/{{len}} images [{{elapsed_precise}} < {{eta_precise}}]");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
