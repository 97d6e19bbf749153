//! `ssd serve`: a trained model behind HTTP (`ssd_serve` does the work; this only configures it).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ssd_serve::{ServeConfig, Server};

use crate::backend::Backend;
use crate::detect::{ThresholdArgs, load_detector};

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
    /// Most images run at once by the inference worker (1: no batching).
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Longest the worker waits for a batch to fill, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Images that may wait for the worker; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 32)]
    pub max_body_mib: usize,
    /// Largest image, in megapixels (checked from its header before decoding).
    #[arg(long, default_value_t = 50.0)]
    pub max_megapixels: f64,
    /// Most images in one request.
    #[arg(long, default_value_t = 16)]
    pub max_images: usize,
    /// Longest a request may take, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

impl ServeArgs {
    /// The server's settings; out-of-range values are errors naming their flag.
    pub fn config(&self, backend: Backend) -> anyhow::Result<ServeConfig> {
        anyhow::ensure!(
            self.max_megapixels.is_finite() && self.max_megapixels > 0.0,
            "--max-megapixels {} must be a positive number",
            self.max_megapixels
        );
        let config = ServeConfig {
            max_batch: self.max_batch,
            max_wait: Duration::from_millis(self.max_wait_ms),
            queue_capacity: self.queue,
            max_body_bytes: self.max_body_mib.saturating_mul(1024 * 1024),
            max_pixels: (self.max_megapixels * 1e6).round() as u64,
            max_images_per_request: self.max_images,
            request_timeout: Duration::from_secs(self.timeout_s),
            backend: backend.to_string(),
        };
        config.validate().map_err(|e| match e {
            ssd_serve::ServeError::Config { name, problem } => {
                let flag = match name {
                    "max_batch" => "--max-batch",
                    "queue_capacity" => "--queue",
                    "max_body_bytes" => "--max-body-mib",
                    "max_pixels" => "--max-megapixels",
                    "max_images_per_request" => "--max-images",
                    "request_timeout" => "--timeout-s",
                    other => other,
                };
                anyhow::anyhow!("{flag} {problem}")
            }
            other => other.into(),
        })?;
        Ok(config)
    }
}

/// Runs `ssd serve` until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let post = args.thresholds.post_process()?;
    let backend = match args.backend {
        Some(b) => b,
        None => Backend::default_compiled().context("no backend compiled into this binary")?,
    };
    let config = args.config(backend)?;
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
        server.run(listener, shutdown_signal()).await?;
        eprintln!("stopped: requests in flight answered");
        anyhow::Ok(())
    })
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
