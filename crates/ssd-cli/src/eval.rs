//! `ssd eval`: VOC mAP of devkit result files against a VOC image set.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ssd_data::{ClassList, VocDataset};
use ssd_eval::{ApMetric, EvalConfig, IouRule, VocEvaluator, read_results};

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
    /// `<image_id> <score> <xmin> <ymin> <xmax> <ymax>` (1-based pixels).
    #[arg(long)]
    pub detections: PathBuf,
    /// `voc07` (11-point, the paper's) or `area` (VOC2010+).
    #[arg(long, default_value = "voc07")]
    pub metric: ApMetric,
    /// IoU comparison: `ge` (>=, the devkit's) or `gt` (>, py-faster-rcnn's).
    #[arg(long, default_value = "ge")]
    pub iou_rule: IouRule,
    /// IoU a detection needs to match a ground truth.
    #[arg(long, default_value_t = 0.5)]
    pub iou_threshold: f64,
    /// Class list, one name per line (default: the 20 VOC classes).
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Print JSON (`{"metric", "map", "ap": {class: ap}}`) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ssd eval` on result files; prints the table (or JSON) to stdout.
pub fn eval_results(args: &EvalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let classes = match &args.classes {
        Some(path) => ClassList::from_file(path)?,
        None => ClassList::voc(),
    };
    let voc = VocDataset::open_annotations(&args.dataroot, &args.datanames, classes)?;
    let mut evaluator = VocEvaluator::from_dataset(&voc);
    let count = read_results(&mut evaluator, &args.detections, &args.datanames)
        .with_context(|| format!("reading results from {}", args.detections.display()))?;
    let config = EvalConfig {
        metric: args.metric,
        iou_threshold: args.iou_threshold,
        rule: args.iou_rule,
    };
    anyhow::ensure!(
        args.iou_threshold > 0.0 && args.iou_threshold <= 1.0,
        "--iou-threshold must be in (0, 1], got {}",
        args.iou_threshold
    );
    let result = evaluator.evaluate(&config);
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
