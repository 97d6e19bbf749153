//! `ssd`: the command line of the SSD detector: `train`, `detect`, `eval`, `quickstart`,
//! `export`, `serve`, `backends`.

use anyhow::Context;
use burn::tensor::Tensor;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ssd_backend::{ALL_BACKENDS, Backend, BackendError};
use ssd_cli::detect::{DetectArgs, detect};
use ssd_cli::eval::{EvalArgs, eval_results};
use ssd_cli::export::{ExportArgs, export};
use ssd_cli::quickstart::{QuickstartArgs, quickstart};
use ssd_cli::serve::{ServeArgs, serve};
use ssd_cli::train::{TrainArgs, train};

/// SSD (Single Shot MultiBox Detector) on Burn.
#[derive(Debug, Parser)]
#[command(name = "ssd", version, about, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train an SSD on VOC or COCO data (the Caffe recipe by default).
    Train(Box<TrainArgs>),
    /// Detect objects in an image or a folder of images: annotated copies and JSON lines.
    Detect(DetectArgs),
    /// Score a trained model (`--trained-model`) or any tool's results (`--detections`) on a
    /// VOC or COCO dataset: VOC07 or VOC2010+ mAP, or COCO's AP.
    Eval(EvalArgs),
    /// Synthetic dataset, a small SSD trained on it, its mAP, annotated images and loss curve:
    /// the whole workflow in a few minutes on a CPU, nothing to download.
    Quickstart(QuickstartArgs),
    /// Write a trained model as an ONNX file (opset 17), optionally with its post-processing
    /// (softmax, box decoding, NMS) in the graph.
    Export(ExportArgs),
    /// Serve a trained model over HTTP: `POST /v1/detect` (dynamic batching), `GET /v1/model`,
    /// `/health`, `/metrics` and a page to try it in the browser at `/`.
    Serve(Box<ServeArgs>),
    /// List the backends compiled into this binary and check that each one computes.
    Backends {
        /// Check only this backend (default: every compiled-in one).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
    },
}

/// The command line: a number after a flag is its value even when negative (then an error
/// naming the flag's range, not "unexpected argument"); `ssd export`'s thresholds need
/// `--postprocess` (they set the post-processing in the graph, which is only there with it).
fn command() -> clap::Command {
    let needs_postprocess = |a: clap::Arg| a.requires("postprocess");
    Cli::command()
        .mut_subcommands(|s| {
            s.mut_args(|a| {
                if a.get_action().takes_values() {
                    a.allow_negative_numbers(true)
                } else {
                    a
                }
            })
        })
        .mut_subcommand("export", |s| {
            s.mut_arg("min_score", needs_postprocess)
                .mut_arg("top_k", needs_postprocess)
                .mut_arg("nms_overlap", needs_postprocess)
        })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Backends { backend } => backends(backend),
        Command::Eval(args) => eval_results(&args),
        Command::Detect(args) => detect(&args),
        Command::Quickstart(args) => quickstart(&args),
        Command::Export(args) => export(&args),
        Command::Serve(args) => serve(&args),
        Command::Train(args) => train(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, no backtrace.
            eprintln!("error: {}", ssd_cli::error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn backends(only: Option<Backend>) -> anyhow::Result<()> {
    let selected: Vec<Backend> = match only {
        Some(b) => vec![b],
        None => Backend::compiled(),
    };
    for b in ALL_BACKENDS
        .into_iter()
        .filter(|b| only.is_none() || only == Some(*b))
    {
        if !b.is_compiled() && only.is_none() {
            println!("{b:5} not compiled in (cargo feature `{b}`)");
        }
    }
    for b in selected {
        let device = match b.device() {
            Ok(device) => device,
            // Listing everything: a compiled-in GPU backend without a GPU here is reported, not
            // fatal.
            Err(e @ BackendError::Unavailable { .. }) if only.is_none() => {
                println!("{b:5} unavailable: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let x = Tensor::<2>::ones([256, 256], &device);
        let total: Vec<f32> = x
            .clone()
            .matmul(x)
            .sum()
            .into_data()
            .try_to_vec()
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("reading back a result from backend {b}"))?;
        let ok = total.first().copied() == Some(256.0 * 256.0 * 256.0);
        println!(
            "{b:5} {device:?}: {}",
            if ok { "ok" } else { "WRONG RESULT" }
        );
        anyhow::ensure!(
            ok,
            "backend {b} computed {total:?} for a 256x256 ones matmul sum"
        );
    }
    Ok(())
}
