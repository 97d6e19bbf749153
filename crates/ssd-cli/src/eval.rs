//! `ssd eval`: VOC mAP of a trained model (`--trained-model`, the paper's test settings) or of
//! devkit result files (`--detections`) against a VOC image set.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ssd_data::{ClassList, VocDataset};
use ssd_eval::{ApMetric, EvalConfig, IouRule, MissingClass, read_results, write_results};
use ssd_train::{EvalOptions, detect_dataset, voc_evaluator};

use crate::detect::load_detector;

/// Arguments of `ssd eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// VOC root(s) holding `Annotations/` and `ImageSets/Main/` (e.g. VOCdevkit/VOC2007);
    /// comma-separated for several.
    #[arg(long, value_delimiter = ',', required = true)]
    pub dataroot: Vec<PathBuf>,
    /// Image set: `ImageSets/Main/<name>.txt`.
    #[arg(long, default_value = "test")]
    pub datanames: String,
    /// Folder of devkit result files `<comp>_det_<set>_<class>.txt`, lines
    /// `<image_id> <score> <xmin> <ymin> <xmax> <ymax>` (1-based pixels). With `--trained-model`:
    /// where the model's result files are written (default `results/det`).
    #[arg(long)]
    pub detections: Option<PathBuf>,
    /// Evaluate this model (checkpoint folder, `.bpk` or PyTorch `.pth`): detection over the
    /// image set with the paper's test settings (score 0.01, top 400 per class, NMS 0.45, 200 per
    /// image), then the devkit result files and the mAP.
    #[arg(long)]
    pub trained_model: Option<PathBuf>,
    /// Images per batch (with `--trained-model`), at least 1.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Data loading threads (with `--trained-model`), 1 to 256.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Backend (with `--trained-model`; default: the first compiled in).
    #[arg(long, value_enum)]
    pub backend: Option<crate::backend::Backend>,
    /// `voc07` (11-point, the paper's) or `area` (VOC2010+).
    #[arg(long, default_value = "voc07")]
    pub metric: ApMetric,
    /// IoU comparison: `ge` (>=, the devkit's) or `gt` (>, py-faster-rcnn's).
    #[arg(long, default_value = "ge")]
    pub iou_rule: IouRule,
    /// IoU a detection needs to match a ground truth, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub iou_threshold: f64,
    /// Class list, one name per line (default: the 20 VOC classes).
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// With `--detections`: a class without a results file has no detections (else it is an
    /// error naming the file expected).
    #[arg(long)]
    pub missing_as_empty: bool,
    /// Print JSON (`{"metric", "map", "ap": {class: ap}}`) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ssd eval`; prints the table (or JSON) to stdout.
pub fn eval_results(args: &EvalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    // Every number is checked before anything is loaded, whichever mode uses it.
    let config = EvalConfig {
        metric: args.metric,
        iou_threshold: args.iou_threshold,
        rule: args.iou_rule,
    };
    config.validate().map_err(|e| e.named("--iou-threshold"))?;
    let options = EvalOptions {
        batch_size: args.batch_size,
        workers: args.workers,
    };
    options.validate()?;
    let (voc, evaluator, count) = match &args.trained_model {
        Some(model) => {
            let detector = load_detector(model, args.classes.as_deref(), args.backend)?;
            let voc = Arc::new(VocDataset::open(
                &args.dataroot,
                &args.datanames,
                detector.classes().clone(),
            )?);
            let bar = progress_bar(voc.len() as u64, "detecting");
            let evaluator = detect_dataset(&detector, &voc, &options, |done| {
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            let folder = args
                .detections
                .clone()
                .unwrap_or_else(|| PathBuf::from("results/det"));
            write_results(&evaluator, &folder, "comp4", &args.datanames)?;
            if !args.json {
                println!("result files in {}", folder.display());
            }
            let count = evaluator.num_detections();
            (voc, evaluator, count)
        }
        None => {
            let Some(folder) = &args.detections else {
                anyhow::bail!("give --trained-model MODEL or --detections FOLDER");
            };
            let classes = match &args.classes {
                Some(path) => ClassList::from_file(path)?,
                None => ClassList::voc(),
            };
            let voc = Arc::new(VocDataset::open_annotations(
                &args.dataroot,
                &args.datanames,
                classes,
            )?);
            let mut evaluator = voc_evaluator(&voc)?;
            let missing = if args.missing_as_empty {
                MissingClass::NoDetections
            } else {
                MissingClass::Error
            };
            let count = read_results(&mut evaluator, folder, &args.datanames, missing)
                .with_context(|| format!("reading results from {}", folder.display()))?;
            (voc, evaluator, count)
        }
    };
    let result = evaluator.evaluate(&config)?;
    if args.json {
        println!("{}", result.to_json());
    } else {
        print!("{}", result.table());
        println!(
            "{count} detections on {} images ({}), evaluated in {:.0?}",
            voc.len(),
            args.datanames,
            start.elapsed()
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
