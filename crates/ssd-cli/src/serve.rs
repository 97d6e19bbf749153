//! `ssd serve`: a trained model behind HTTP (`ssd_serve` does the work; this only configures it).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ssd_core::check_setting;
use ssd_serve::{ServeConfig, Server};

use crate::detect::{ThresholdArgs, load_detector};
use ssd_backend::Backend;

/// Arguments of `ssd serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Trained model: a checkpoint folder or `.bpk` from `ssd train`, or a PyTorch `.pth` in the
    /// amdegroot, torchvision or lufficc layout.
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
    /// Backend (default: the first compiled in).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// The default thresholds of a request (its query's `min_score`, `top_k` and `nms` override
    /// them).
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Most images run at once by the inference worker (1: no batching), 1 to 1024.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Longest the worker waits for a batch to fill, in milliseconds, 0 to 1000.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Images that may wait for the worker (each holds the network input: 1 MiB at 300 px);
    /// more get 503 with Retry-After. 1 to 100000.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest request body, in MiB, 1 to 4096.
    #[arg(long, default_value_t = 32)]
    pub max_body_mib: usize,
    /// Largest image, in megapixels (checked from its header before decoding), up to
    /// 268.435456 (16384 x 16384).
    #[arg(long, default_value_t = 50.0)]
    pub max_megapixels: f64,
    /// Most images in one request, 1 to 1024.
    #[arg(long, default_value_t = 16)]
    pub max_images: usize,
    /// Longest a request may take, in seconds, 1 to 3600.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Memory that request bodies and images being decoded may hold at once, in MiB (at least
    /// --max-body-mib): a request that needs more than is free gets 503 with Retry-After, an
    /// image whose decoding alone needs more than all of it 413.
    #[arg(long, default_value_t = 1024)]
    pub memory_budget_mib: u64,
    /// Most client connections open at once (more wait to be accepted), 1 to 65536.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Longest a client may take to send a request's head, and an idle keep-alive connection
    /// may stay open, in seconds, 1 to 3600.
    #[arg(long, default_value_t = 10)]
    pub header_timeout_s: u64,
    /// On Ctrl-C or SIGTERM, longest the requests in flight are given before the remaining
    /// connections are closed, in seconds, 0 to 3600.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout_s: u64,
}

impl ServeArgs {
    /// The server's settings; out-of-range values are errors naming their flag and its range,
    /// in the flag's own unit.
    pub fn config(&self, backend: Backend) -> anyhow::Result<ServeConfig> {
        use ssd_serve::ranges::*;
        let mib = |bytes: usize| bytes / (1024 * 1024);
        let megapixels = MAX_PIXELS as f64 / 1e6;
        let seconds = |d: Duration| d.as_secs();
        let checks = [
            check_setting(
                "--max-batch",
                (1..=MAX_BATCH).contains(&self.max_batch),
                "in 1..=1024",
                self.max_batch,
            ),
            check_setting(
                "--max-wait-ms",
                self.max_wait_ms <= MAX_WAIT.as_millis() as u64,
                "in 0..=1000",
                self.max_wait_ms,
            ),
            check_setting(
                "--queue",
                (1..=MAX_QUEUE).contains(&self.queue),
                "in 1..=100000",
                self.queue,
            ),
            check_setting(
                "--max-body-mib",
                (1..=mib(MAX_BODY_BYTES)).contains(&self.max_body_mib),
                "in 1..=4096",
                self.max_body_mib,
            ),
            check_setting(
                "--max-megapixels",
                (1e-6..=megapixels).contains(&self.max_megapixels),
                "in [0.000001, 268.435456] (one pixel to 16384 x 16384)",
                self.max_megapixels,
            ),
            check_setting(
                "--max-images",
                (1..=MAX_IMAGES).contains(&self.max_images),
                "in 1..=1024",
                self.max_images,
            ),
            check_setting(
                "--timeout-s",
                (1..=seconds(MAX_TIMEOUT)).contains(&self.timeout_s),
                "in 1..=3600",
                self.timeout_s,
            ),
            check_setting(
                "--memory-budget-mib",
                (self.max_body_mib as u64..=MAX_MEMORY_BYTES >> 20)
                    .contains(&self.memory_budget_mib),
                "at least --max-body-mib and at most 1048576 (1 TiB)",
                self.memory_budget_mib,
            ),
            check_setting(
                "--max-connections",
                (1..=MAX_CONNECTIONS).contains(&self.max_connections),
                "in 1..=65536",
                self.max_connections,
            ),
            check_setting(
                "--header-timeout-s",
                (1..=seconds(MAX_TIMEOUT)).contains(&self.header_timeout_s),
                "in 1..=3600",
                self.header_timeout_s,
            ),
            check_setting(
                "--shutdown-timeout-s",
                self.shutdown_timeout_s <= seconds(MAX_TIMEOUT),
                "in 0..=3600",
                self.shutdown_timeout_s,
            ),
        ];
        if let Some(e) = checks.into_iter().find_map(Result::err) {
            return Err(e.into());
        }
        let config = ServeConfig {
            max_batch: self.max_batch,
            max_wait: Duration::from_millis(self.max_wait_ms),
            queue_capacity: self.queue,
            max_body_bytes: self.max_body_mib * 1024 * 1024,
            max_pixels: ((self.max_megapixels * 1e6).round() as u64).max(1),
            max_images_per_request: self.max_images,
            request_timeout: Duration::from_secs(self.timeout_s),
            memory_budget_bytes: self.memory_budget_mib << 20,
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout_s),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_s),
            backend: backend.to_string(),
        };
        // Within the flags' ranges every setting is within the library's.
        config.validate()?;
        Ok(config)
    }
}

/// Runs `ssd serve` until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let post = args.thresholds.post_process()?;
    let backend = Backend::chosen(args.backend)?;
    let mut config = args.config(backend)?;
    config.max_connections = fit_descriptors(config.max_connections);
    let detector = load_detector(&args.trained_model, args.classes.as_deref(), Some(backend))?
        .with_post_process(post);
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
                "stopped: {n} connections still open after --shutdown-timeout-s {} were closed",
                args.shutdown_timeout_s
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
