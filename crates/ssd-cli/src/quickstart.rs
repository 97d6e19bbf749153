//! `ssd quickstart`: the whole workflow on a machine with no dataset — synthetic data (VOC or
//! COCO layout), a small SSD trained on it, VOC07 mAP (and for COCO data the COCO AP) on its test
//! split, annotated test images, the loss curve.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ssd_data::{
    DetectionDataset, SyntheticConfig, SyntheticFormat, VideoConfig, remove_synthetic,
    write_synthetic_as, write_synthetic_video,
};
use ssd_evaluation::{EvalOptions, Metric, MetricChoice, detect_dataset, results_in};
use ssd_model::{Detector, PostProcessConfig};
use ssd_train::{Recipe, RunRequest, TrainOverrides};

use crate::detect::annotate_files;
use crate::train::{format_duration, on_backend, run_training};

/// Arguments of `ssd quickstart`: the settings of `ssd train` with the quickstart's recipe as
/// their defaults (but the data's, which the quickstart writes itself), and the data's layout.
#[derive(Debug, Clone, clap::Args)]
pub struct QuickstartArgs {
    /// The settings (`--iterations`, `--lr`, `--results`: the output folder, with `data/` the
    /// synthetic dataset, `weights/`, `loss/`, `images/`, `det/`).
    #[command(flatten)]
    pub overrides: TrainOverrides,
    /// Layout of the synthetic dataset: `voc`, or `coco` (instances_*.json with non-contiguous
    /// category ids and crowd regions); evaluated with VOC07 and the format's own metric.
    #[arg(long, value_enum, default_value = "voc", hide_possible_values = true)]
    pub format: SyntheticFormat,
}

/// Arguments of `ssd synthetic`: the quickstart's dataset, of any size and seed.
#[derive(Debug, Clone, clap::Args)]
pub struct SyntheticArgs {
    /// Folder to write: absent, empty or an earlier synthetic dataset (which is replaced); a
    /// folder holding anything else is refused.
    pub output: PathBuf,
    /// Layout: `voc` (a VOC root: `Annotations/`, `JPEGImages/`, `ImageSets/Main/trainval.txt`
    /// and `test.txt`, `classes.txt`) or `coco` (`annotations/instances_{trainval,test}.json`).
    #[arg(long, value_enum, default_value = "voc", hide_possible_values = true)]
    pub format: SyntheticFormat,
    /// Sparse scenes (the quickstart's earlier dataset: 1 to 4 objects that overlap by a
    /// quarter at most) instead of the quickstart's video-like ones.
    #[arg(long, conflicts_with = "video")]
    pub sparse: bool,
    /// Images of the `trainval` set (default: the quickstart's).
    #[arg(long, default_value_t = SyntheticConfig::quickstart(0, SyntheticFormat::Voc).train_images)]
    pub train_images: usize,
    /// Images of the `test` set (default: the quickstart's).
    #[arg(long, default_value_t = SyntheticConfig::quickstart(0, SyntheticFormat::Voc).test_images)]
    pub test_images: usize,
    /// Seed of everything drawn (two seeds give two different datasets).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a video instead: a MOTChallenge sequence of shapes that enter, cross, hide each
    /// other and leave (`img1/` frames, `gt/gt.txt` ground-truth tracks, `seqinfo.ini`), for
    /// `ssd track` and `tools/mot_metrics.py`.
    #[arg(long, conflicts_with_all = ["format", "train_images", "test_images"])]
    pub video: bool,
    /// Frames of the video.
    #[arg(long, requires = "video", default_value_t = VideoConfig::default().frames)]
    pub frames: usize,
    /// Frame width of the video.
    #[arg(long, requires = "video", default_value_t = VideoConfig::default().width)]
    pub width: u32,
    /// Frame height of the video.
    #[arg(long, requires = "video", default_value_t = VideoConfig::default().height)]
    pub height: u32,
    /// Objects over the video (a third of them in view from the first frame).
    #[arg(long, requires = "video", default_value_t = VideoConfig::default().objects)]
    pub objects: usize,
    /// Also encode the frames into `video.mp4` in the folder (H.264; needs FFmpeg).
    #[arg(long, requires = "video")]
    pub mp4: bool,
}

/// Runs `ssd synthetic`: writes the dataset and says what it holds.
pub fn synthetic(args: &SyntheticArgs) -> anyhow::Result<()> {
    if args.video {
        return synthetic_video(args);
    }
    let scenes = if args.sparse {
        SyntheticConfig::sparse(args.seed, args.format)
    } else {
        SyntheticConfig::quickstart(args.seed, args.format)
    };
    let config = SyntheticConfig {
        train_images: args.train_images,
        test_images: args.test_images,
        ..scenes
    };
    remove_synthetic(&args.output)?;
    let summary = write_synthetic_as(&args.output, &config, args.format)
        .with_context(|| format!("writing the synthetic dataset to {}", args.output.display()))?;
    println!(
        "{}: {} images ({} trainval, {} test), {} objects ({} truncated, {} difficult or crowd \
         regions), classes in {}",
        args.output.display(),
        summary.images,
        args.train_images,
        args.test_images,
        summary.objects,
        summary.truncated,
        summary.difficult,
        summary.class_file.display()
    );
    Ok(())
}

/// `ssd synthetic --video`.
fn synthetic_video(args: &SyntheticArgs) -> anyhow::Result<()> {
    let config = VideoConfig {
        seed: args.seed,
        frames: args.frames,
        width: args.width,
        height: args.height,
        objects: args.objects,
        ..VideoConfig::default()
    };
    if config.frames == 0 || config.width < 16 || config.height < 16 {
        anyhow::bail!("--frames must be at least 1, --width and --height at least 16");
    }
    remove_synthetic(&args.output)?;
    let summary = write_synthetic_video(&args.output, &config)
        .with_context(|| format!("writing the synthetic video to {}", args.output.display()))?;
    if args.mp4 {
        let path = args.output.join("video.mp4");
        let input = ssd_data::video::VideoInput::Frames(summary.frames_dir.clone());
        let mut reader = ssd_data::video::VideoReader::open(&input, Some(config.frame_rate))?;
        let mut writer = ssd_data::video::VideoWriter::create(
            &path,
            config.width,
            config.height,
            config.frame_rate,
        )?;
        while let Some(frame) = reader.read()? {
            writer.write(&frame)?;
        }
        writer.finish()?;
    }
    println!(
        "{}: {} frames of {}x{} at {} frames/s in {}, {} tracks ({} rows, {} not scored) in {}{}",
        args.output.display(),
        summary.frames,
        config.width,
        config.height,
        config.frame_rate,
        summary.frames_dir.display(),
        summary.tracks,
        summary.rows,
        summary.ignored,
        summary.ground_truth.display(),
        if args.mp4 { ", video.mp4" } else { "" }
    );
    Ok(())
}

/// The settings of `ssd train` that name the data, which the quickstart writes itself: hidden
/// from its help and refused.
pub const QUICKSTART_DATA_FLAGS: [&str; 4] = ["dataroot", "datanames", "images", "classes"];

/// Runs the quickstart and prints the mAP and where everything is.
pub fn quickstart(args: &QuickstartArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let o = &args.overrides;
    let given = [
        o.dataroot.is_some(),
        o.datanames.is_some(),
        o.images.is_some(),
        o.classes.is_some(),
    ];
    if let Some((flag, _)) = QUICKSTART_DATA_FLAGS.iter().zip(given).find(|(_, g)| *g) {
        anyhow::bail!(
            "--{} is not taken by ssd quickstart, which writes its own data (use ssd train)",
            flag.replace('_', "-")
        );
    }
    let results = o.results.clone().unwrap_or_else(|| {
        Recipe::Quickstart
            .config(Recipe::Quickstart.default_model(), None)
            .results
    });
    let data = results.join("data");
    let request = RunRequest {
        overrides: TrainOverrides {
            dataroot: Some(vec![data.clone()]),
            ..o.clone()
        },
        recipe: Recipe::Quickstart,
        ..RunRequest::default()
    };
    // Settings are checked before anything is written.
    let config = request.config()?;
    let format = args.format;
    let data_config = SyntheticConfig::quickstart(config.seed, format);
    // The quickstart owns its data folder: an earlier run's dataset (of either layout) goes.
    remove_synthetic(&data)?;
    println!(
        "writing a synthetic {} dataset ({} train + {} test images) to {}",
        format!("{format:?}").to_uppercase(),
        data_config.train_images,
        data_config.test_images,
        data.display()
    );
    let summary = write_synthetic_as(&data, &data_config, format)
        .with_context(|| format!("writing the synthetic dataset to {}", data.display()))?;
    println!(
        "{} images, {} objects ({} truncated, {} difficult or crowd regions)",
        summary.images, summary.objects, summary.truncated, summary.difficult
    );
    // The classes are the dataset's own (its class file, or the COCO file's categories).
    let (settings, backend) = on_backend(request.resolve()?, true)?;
    let run = run_training(settings, backend, None)?;
    let trained_in = start.elapsed();
    let detector = Detector::load(&run.outcome.model, &backend.device()?)?;
    let test = Arc::new(DetectionDataset::open(
        std::slice::from_ref(&data),
        "test",
        detector.classes().clone(),
    )?);
    let options = EvalOptions {
        batch_size: 16,
        workers: config.workers,
    };
    let found = detect_dataset(&detector, &test, &options, |_| {})?;
    // The dataset format's own results files; VOC07 mAP (the quickstart's number), and the
    // format's own metric beside it when that is another.
    let det = results_in(&test, &results.join("det"));
    found.write_results(Some(&det), true, &[])?;
    let voc07 = Metric::default();
    let result = found.evaluate(&voc07)?;
    print!("{}", result.table());
    let own = MetricChoice::default().metric(test.format());
    let other = if own == voc07 {
        None
    } else {
        let report = found.evaluate(&own)?;
        print!("\n{}", report.table());
        Some((own.name(), report.headline()))
    };
    let images = results.join("images");
    let files: Vec<PathBuf> = (0..test.len().min(8)).map(|i| test.image_path(i)).collect();
    let detector = detector.with_post_process(PostProcessConfig {
        min_score: 0.3,
        ..PostProcessConfig::default()
    });
    annotate_files(&detector, &files, &images)?;
    println!(
        "\nquickstart done in {} (training {}): VOC07 mAP {:.4} on {} test images",
        format_duration(start.elapsed()),
        format_duration(trained_in),
        result.headline().unwrap_or(0.0),
        test.len()
    );
    println!("  model        {}", run.outcome.model.display());
    println!("  checkpoints  {}", run.outcome.checkpoint.display());
    println!(
        "  loss         {} ({})",
        run.loss_plot.display(),
        run.loss_csv.display()
    );
    println!("  images       {}/p_*.jpg", images.display());
    if let Some((name, headline)) = other {
        let label = format!("{name} metric");
        println!("  {label:12} {:.4}", headline.unwrap_or(0.0));
    }
    println!("  results      {}", det.display());
    println!("  dataset      {}", data.display());
    Ok(())
}
