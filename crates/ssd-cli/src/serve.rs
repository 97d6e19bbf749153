//! `ssd serve`: a trained model behind HTTP (`ssd_serve` does the work; this only configures it).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use ssd_serve::{ServeFlags, Server};

use crate::detect::{InferenceArgs, ThresholdArgs};

/// Arguments of `ssd serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Trained model: a checkpoint folder or `.bpk` from `ssd train`, or a PyTorch `.pth` in the
    /// amdegroot, torchvision (SSD300, SSDLite320), lufficc or NVIDIA (SSD300 v1.1) layout.
    #[arg(long)]
    pub trained_model: PathBuf,
    /// Class list for a `.pth` with classes other than VOC's.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// What runs the network.
    #[command(flatten)]
    pub inference: InferenceArgs,
    /// The default thresholds of a request (its query's `min_score`, `top_k` and `nms_overlap`
    /// override them).
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// The limits.
    #[command(flatten)]
    pub limits: ServeFlags,
}

/// Runs `ssd serve` until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let post = args.thresholds.post_process()?;
    // Flags are checked before the model is loaded.
    args.limits.config("")?;
    let detector = args
        .inference
        .load(&args.trained_model, args.classes.as_deref())?
        .with_post_process(post);
    let backend = args.inference.describe(&detector)?;
    let mut config = args.limits.config(&backend)?;
    let deadline = config.shutdown_timeout.as_secs();
    config.max_connections = fit_descriptors(config.max_connections);
    let name = detector.source().display().to_string();
    let server = Server::new(detector, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let address = listener.local_addr()?;
        eprintln!("serving {name} on {backend} at http://{address}/ (Ctrl-C to stop)");
        let stopped = server.run(listener, shutdown_signal()).await?;
        match stopped.closed_at_deadline {
            0 => eprintln!("stopped: requests in flight answered"),
            n => eprintln!(
                "stopped: {n} connections still open after --shutdown-timeout-s {deadline} were \
                 closed"
            ),
        }
        anyhow::Ok(())
    })
}

/// Descriptors kept for what is not a connection: the listener, the model and other files,
/// the runtime.
const RESERVED_DESCRIPTORS: u64 = 16;

/// The connections the process's descriptor limit allows, up to `max_connections`: the soft
/// limit is raised towards the hard one as far as needed (as nginx and Go's runtime do), and
/// where that is not enough the cap is lowered with a warning, so that a flood of connections
/// never leaves the server without a descriptor for anything else.
#[cfg(unix)]
fn fit_descriptors(max_connections: usize) -> usize {
    let wanted = max_connections as u64 + RESERVED_DESCRIPTORS;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < wanted => {
            let fit = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
            eprintln!(
                "warning: the descriptor limit is {limit} (ulimit -n): --max-connections lowered \
                 from {max_connections} to {fit}"
            );
            fit as usize
        }
        _ => max_connections,
    }
}

#[cfg(not(unix))]
fn fit_descriptors(max_connections: usize) -> usize {
    max_connections
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
