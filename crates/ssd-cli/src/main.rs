//! `ssd`: the command line of the SSD detector. Today: `ssd backends` and `ssd eval` on result
//! files; `train`, `detect`, model evaluation and `quickstart` come with later issues.

use anyhow::Context;
use burn::tensor::Tensor;
use clap::{Parser, Subcommand};
use ssd_cli::backend::{ALL_BACKENDS, Backend};
use ssd_cli::eval::{EvalArgs, eval_results};

/// SSD (Single Shot MultiBox Detector) on Burn.
#[derive(Debug, Parser)]
#[command(name = "ssd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the backends compiled into this binary and check that each one computes.
    Backends {
        /// Check only this backend (default: every compiled-in one).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
    },
    /// VOC mAP of devkit result files (`comp4_det_test_<class>.txt`) against an image set.
    Eval(EvalArgs),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Backends { backend } => backends(backend),
        Command::Eval(args) => eval_results(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, no backtrace.
            eprintln!("error: {e:#}");
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
        let device = b.device()?;
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
