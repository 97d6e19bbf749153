//! `ssd export`: a trained model as an ONNX file (`ssd_model::onnx` does the work).

use std::path::PathBuf;

use ssd_model::onnx::{OnnxOptions, write_onnx};

use crate::detect::{DetectArgs, load_detector};

/// Arguments of `ssd export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Trained model: a checkpoint folder or `.bpk` from `ssd train`, or a PyTorch `.pth` in the
    /// amdegroot, torchvision or lufficc layout.
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
    /// With --postprocess: lowest score kept, in [0, 1].
    #[arg(long, default_value_t = 0.2)]
    pub min_score: f32,
    /// With --postprocess: detections kept per image, at least 1.
    #[arg(long, default_value_t = 200)]
    pub top_k: usize,
    /// With --postprocess: NMS IoU, in (0, 1].
    #[arg(long, default_value_t = 0.45)]
    pub nms_overlap: f32,
    /// Class list for a `.pth` with classes other than VOC's.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs `ssd export`: prints what was written.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    // The thresholds are `ssd detect`'s, checked by the same code.
    let detect = DetectArgs {
        trained_model: args.trained_model.clone(),
        test_image: PathBuf::new(),
        min_score: args.min_score,
        top_k: args.top_k,
        nms_overlap: args.nms_overlap,
        classes: args.classes.clone(),
        output: PathBuf::new(),
        backend: None,
    };
    let post = detect.post_process()?;
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
