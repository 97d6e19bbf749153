//! `ssd`: the command line of the SSD detector: `train`, `detect`, `eval`, `quickstart`,
//! `export`, `serve`, `track`, `synthetic`, `backends`.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ssd_backend::{ALL_BACKENDS, Backend, BackendError};
use ssd_cli::detect::{DetectArgs, detect};
use ssd_cli::eval::{EvalArgs, eval_results};
use ssd_cli::export::{ExportArgs, export};
use ssd_cli::quickstart::{
    QUICKSTART_DATA_FLAGS, QuickstartArgs, SyntheticArgs, quickstart, synthetic,
};
use ssd_cli::serve::{ServeArgs, serve};
use ssd_cli::track::{TrackArgs, track};
use ssd_cli::train::{TrainArgs, train};
use ssd_serve::ServeFlags;
use ssd_train::Recipe;

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
    Quickstart(Box<QuickstartArgs>),
    /// Detect and track objects in a video file, a folder of frames, a stream or a capture
    /// device: an annotated video, MOTChallenge results, JSON lines.
    Track(Box<TrackArgs>),
    /// Write the quickstart's synthetic dataset (VOC or COCO layout), of any size, without
    /// training; or a synthetic video with its ground-truth tracks (`--video`).
    Synthetic(SyntheticArgs),
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
/// naming the flag's range, not "unexpected argument"); the training settings' help shows the
/// defaults of the recipe (`ssd train`: the model preset's, `ssd quickstart`: its own), and the
/// quickstart's data flags are hidden; `ssd export`'s thresholds need `--postprocess` (they set
/// the post-processing in the graph, which is only there with it).
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
        .mut_subcommand("train", |s| ssd_train::show_defaults(s, Recipe::Preset))
        .mut_subcommand("quickstart", |s| {
            QUICKSTART_DATA_FLAGS.into_iter().fold(
                ssd_train::show_defaults(s, Recipe::Quickstart),
                |s, flag| s.mut_arg(flag, |a| a.hide(true)),
            )
        })
        .mut_subcommand("serve", ServeFlags::show_defaults)
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
        Command::Synthetic(args) => synthetic(&args),
        Command::Track(args) => track(&args),
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
        match b.check() {
            Ok(device) => println!("{b:5} {device:?}: ok"),
            // Listing everything: a compiled-in GPU backend without a GPU here is reported, not
            // fatal.
            Err(e @ BackendError::Unavailable { .. }) if only.is_none() => {
                println!("{b:5} unavailable: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
