//! `ssd export`: a trained model as an ONNX file (`ssd_model::onnx` does the work).

use std::path::PathBuf;

use ssd_model::onnx::{OnnxOptions, write_onnx};

use crate::detect::{ThresholdArgs, load_detector};

/// Arguments of `ssd export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Trained model: a checkpoint folder or `.bpk` from `ssd train`, or a PyTorch `.pth` in the
    /// amdegroot, torchvision (SSD300, SSDLite320), lufficc or NVIDIA (SSD300 v1.1) layout.
    #[arg(long)]
    pub trained_model: PathBuf,
    /// The ONNX file to write (its folder must exist).
    #[arg(long)]
    pub output: PathBuf,
    /// Put softmax, box decoding and per-class NMS in the graph (outputs `num_detections`,
    /// `boxes`, `scores`, `labels`) with the settings below; without it the outputs are the
    /// network's `loc` and `conf`.
    #[arg(long)]
    pub postprocess: bool,
    /// The thresholds of --postprocess.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Class list for a `.pth` with classes other than VOC's.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs `ssd export`: prints what was written.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let post = args.thresholds.post_process()?;
    let detector =
        load_detector(&args.trained_model, args.classes.as_deref(), None)?.with_post_process(post);
    let options = OnnxOptions {
        post_process: args.postprocess,
        overwrite: args.overwrite,
    };
    let summary = write_onnx(&detector, &args.output, &options)?;
    println!(
        "wrote {} ({:.1} MB, opset {}, {} nodes, {} initializers); input images [N, 3, {s}, {s}], \
         outputs {}",
        summary.path.display(),
        summary.bytes as f64 / 1e6,
        ssd_model::onnx::OPSET,
        summary.nodes,
        summary.initializers,
        summary.outputs.join(", "),
        s = detector.config().input_size(),
    );
    Ok(())
}
