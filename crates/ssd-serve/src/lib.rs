//! Detection over HTTP: a trained [`Detector`] behind a small server with dynamic batching,
//! limits on what a request may cost, Prometheus metrics and a web page to try the model.
//!
//! Every request's images go to one bounded queue in front of one inference thread, which owns
//! the detector and runs up to [`ServeConfig::max_batch`] images at once, waiting at most
//! [`ServeConfig::max_wait`] for a batch to fill. Images are decoded and resized on the request
//! side (tokio's blocking pool), so the inference thread only runs the network and the
//! post-processing. Each image is post-processed with its own request's thresholds, so a batch
//! gives every image the detections [`Detector::detect`] gives it alone.
//!
//! Routes: `POST /v1/detect` (raw image body or `multipart/form-data`; query `min_score`,
//! `top_k`, `nms_overlap`, the names of `ssd detect`'s flags), `GET /v1/model`, `GET /health`, `GET /metrics`, `GET /` (the page). Errors are
//! JSON `{"error": "..."}` with a 4xx/5xx status; a full queue is `503` with `Retry-After`.
//!
//! What a client can make the server hold is bounded: request bodies and images being decoded
//! share [`ServeConfig::memory_budget_bytes`] (reserved before they are allocated: a body's
//! buffer as it grows, the memory an image's header says its decoding needs; `503` when others
//! hold it, `413` for one that could never fit), the queue holds at most
//! [`ServeConfig::queue_capacity`] network inputs, and [`Server::run`] keeps at most
//! [`ServeConfig::max_connections`] connections open, closes one whose request head does not
//! arrive within [`ServeConfig::header_timeout`] (an idle keep-alive connection too), and on
//! shutdown closes whatever is left after [`ServeConfig::shutdown_timeout`]. A body over the
//! limit is read and discarded (up to 64 MiB more) before the `413`, so that clients which send
//! the whole body before reading the answer see it.
//!
//! ```no_run
//! use ssd_serve::{ServeConfig, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let device = burn::tensor::Device::default();
//! let detector = ssd_model::Detector::load("results/weights/ssd300.bpk", &device)?;
//! let server = Server::new(detector, ServeConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server
//!     .run(listener, async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod budget;
#[cfg(feature = "clap")]
mod flags;
mod http;
pub mod metrics;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use ssd_core::check_setting;
use ssd_model::{Detector, PostProcessConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[cfg(feature = "clap")]
pub use flags::ServeFlags;
pub use metrics::Metrics;

/// Limits and batching of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Most images the inference worker runs at once (1: no batching).
    pub max_batch: usize,
    /// Longest the worker waits for a batch to fill once it has an image (zero: it takes what
    /// is queued already).
    pub max_wait: Duration,
    /// Images that may wait for the worker; a request that finds the queue full is refused with
    /// `503 Service Unavailable` and `Retry-After`.
    pub queue_capacity: usize,
    /// Largest request body in bytes (`413` beyond).
    pub max_body_bytes: usize,
    /// Largest image in pixels, width times height, checked from the image's header before it
    /// is decoded (`413` beyond).
    pub max_pixels: u64,
    /// Most images in one request (`413` beyond).
    pub max_images_per_request: usize,
    /// Longest a request may take, reading its body and waiting for its detections included
    /// (`408` while reading, `504` while waiting).
    pub request_timeout: Duration,
    /// Memory that request bodies and images being decoded may hold at once, in bytes (at least
    /// [`ServeConfig::max_body_bytes`]). A request that needs more than what is free now is
    /// `503` with `Retry-After`; an image whose decoding alone needs more than all of it, `413`.
    pub memory_budget_bytes: u64,
    /// Most client connections open at once; more wait to be accepted ([`Server::run`]).
    pub max_connections: usize,
    /// Longest a connection may take to send a request's head (line and headers), and longest
    /// an idle keep-alive connection stays open ([`Server::run`]).
    pub header_timeout: Duration,
    /// On shutdown, longest the requests in flight are given before the remaining connections
    /// are closed ([`Server::run`]).
    pub shutdown_timeout: Duration,
    /// The backend's name, as `GET /v1/model` reports it.
    pub backend: String,
}

impl Default for ServeConfig {
    /// Batches of up to 8 images, 5 ms to fill; 64 images queued; 32 MiB bodies, 50 MP images,
    /// 16 images per request; 60 s per request; 1 GiB of memory for bodies and decoding; 256
    /// connections, 10 s for a request's head, 30 s to finish on shutdown.
    fn default() -> Self {
        Self {
            max_batch: 8,
            max_wait: Duration::from_millis(5),
            queue_capacity: 64,
            max_body_bytes: 32 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_images_per_request: 16,
            request_timeout: Duration::from_secs(60),
            memory_budget_bytes: 1024 * 1024 * 1024,
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            backend: String::new(),
        }
    }
}

/// The ranges [`ServeConfig::validate`] allows; front ends check their flags against them.
pub mod ranges {
    use std::time::Duration;

    /// Most images per batch.
    pub const MAX_BATCH: usize = 1024;
    /// Longest wait for a batch to fill.
    pub const MAX_WAIT: Duration = Duration::from_secs(1);
    /// Most images queued.
    pub const MAX_QUEUE: usize = 100_000;
    /// Largest body: 4 GiB.
    pub const MAX_BODY_BYTES: usize = 4 << 30;
    /// Largest image: the decoder's largest side, squared.
    pub const MAX_PIXELS: u64 = ssd_data::MAX_IMAGE_SIDE as u64 * ssd_data::MAX_IMAGE_SIDE as u64;
    /// Most images per request.
    pub const MAX_IMAGES: usize = 1024;
    /// Longest timeout of any kind: an hour.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
    /// Largest memory budget: 1 TiB.
    pub const MAX_MEMORY_BYTES: u64 = crate::budget::Budget::MAX;
    /// Most connections.
    pub const MAX_CONNECTIONS: usize = 65_536;
}

impl ServeConfig {
    /// An error naming the first setting that is out of range ([`ranges`]).
    pub fn validate(&self) -> Result<(), ServeError> {
        use ranges::*;
        let ms = |d: Duration| format!("{} ms", d.as_millis());
        let timeout = |d: Duration| !d.is_zero() && d <= MAX_TIMEOUT;
        let checks = [
            check_setting(
                "max_batch",
                (1..=MAX_BATCH).contains(&self.max_batch),
                "in 1..=1024",
                self.max_batch,
            ),
            check_setting(
                "max_wait",
                self.max_wait <= MAX_WAIT,
                "at most 1000 ms",
                ms(self.max_wait),
            ),
            check_setting(
                "queue_capacity",
                (1..=MAX_QUEUE).contains(&self.queue_capacity),
                "in 1..=100000",
                self.queue_capacity,
            ),
            check_setting(
                "max_body_bytes",
                (1..=MAX_BODY_BYTES).contains(&self.max_body_bytes),
                "in 1..=4294967296",
                self.max_body_bytes,
            ),
            check_setting(
                "max_pixels",
                (1..=MAX_PIXELS).contains(&self.max_pixels),
                "in 1..=268435456 (16384 x 16384)",
                self.max_pixels,
            ),
            check_setting(
                "max_images_per_request",
                (1..=MAX_IMAGES).contains(&self.max_images_per_request),
                "in 1..=1024",
                self.max_images_per_request,
            ),
            check_setting(
                "request_timeout",
                timeout(self.request_timeout),
                "in (0, 3600] s",
                ms(self.request_timeout),
            ),
            check_setting(
                "memory_budget_bytes",
                (self.max_body_bytes as u64..=MAX_MEMORY_BYTES).contains(&self.memory_budget_bytes),
                "at least max_body_bytes and at most 1 TiB",
                self.memory_budget_bytes,
            ),
            check_setting(
                "max_connections",
                (1..=MAX_CONNECTIONS).contains(&self.max_connections),
                "in 1..=65536",
                self.max_connections,
            ),
            check_setting(
                "header_timeout",
                timeout(self.header_timeout),
                "in (0, 3600] s",
                ms(self.header_timeout),
            ),
            check_setting(
                "shutdown_timeout",
                self.shutdown_timeout <= MAX_TIMEOUT,
                "at most 3600 s",
                ms(self.shutdown_timeout),
            ),
        ];
        match checks.into_iter().find_map(Result::err) {
            Some(e) => Err(ServeError::Config {
                name: e.name,
                problem: format!("must be {}, got {}", e.allowed, e.value),
            }),
            None => Ok(()),
        }
    }
}

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A [`ServeConfig`] setting is out of range.
    #[error("{name} {problem}")]
    Config {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The inference thread could not be started.
    #[error("cannot start the inference thread: {0}")]
    Worker(std::io::Error),
    /// Serving failed (the listener's socket).
    #[error("serving failed: {0}")]
    Io(std::io::Error),
    /// The inference thread panicked outside a batch.
    #[error("the inference thread panicked")]
    WorkerPanicked,
}

/// What `GET /v1/model` answers: the model being served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The weights file's name (no folders).
    pub name: String,
    /// The preset its configuration is (`ssd300`, `small`, ...), `null` for a custom one.
    pub preset: Option<String>,
    /// Class names, label 1 first (background left out).
    pub classes: Vec<String>,
    /// Side of the square network input in pixels.
    pub input_size: usize,
    /// The backend it runs on.
    pub backend: String,
    /// The thresholds a request gets unless its query sets them (`min_score`, `top_k`,
    /// `nms_overlap`, and the per-class `top_k_per_class`).
    pub defaults: PostProcessConfig,
    /// Most images per batch.
    pub max_batch: usize,
    /// Most images per request.
    pub max_images_per_request: usize,
}

impl ModelInfo {
    /// The description of `detector` served with `config`.
    pub fn of(detector: &Detector, config: &ServeConfig) -> Self {
        let model = detector.config();
        Self {
            name: detector
                .source()
                .file_name()
                .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned()),
            preset: model.preset_name().map(str::to_owned),
            classes: (1..model.num_classes)
                .map(|l| detector.class_name(l).to_owned())
                .collect(),
            input_size: model.input_size(),
            backend: config.backend.clone(),
            defaults: *detector.post_process(),
            max_batch: config.max_batch,
            max_images_per_request: config.max_images_per_request,
        }
    }
}

/// A detection server: the routes, and the inference thread behind them.
pub struct Server {
    router: axum::Router,
    worker: JoinHandle<()>,
    metrics: Metrics,
    connections: Connections,
}

/// What [`Server::run`] does with connections.
#[derive(Debug, Clone, Copy)]
struct Connections {
    max: usize,
    header_timeout: Duration,
    shutdown_timeout: Duration,
}

impl Server {
    /// Starts the inference thread with `detector` (whose post-processing thresholds are the
    /// defaults of a request) and builds the routes.
    pub fn new(detector: Detector, config: ServeConfig) -> Result<Self, ServeError> {
        config.validate()?;
        let metrics = Metrics::new();
        let info = ModelInfo::of(&detector, &config);
        let preprocessor = detector.preprocessor().clone();
        let defaults = *detector.post_process();
        let batching = worker::Batching {
            max_batch: config.max_batch,
            max_wait: config.max_wait,
            capacity: config.queue_capacity,
        };
        let connections = Connections {
            max: config.max_connections,
            header_timeout: config.header_timeout,
            shutdown_timeout: config.shutdown_timeout,
        };
        let budget =
            budget::Budget::new(config.memory_budget_bytes, metrics.memory_reserved.clone());
        let (queue, worker) =
            worker::spawn(detector, batching, metrics.clone()).map_err(ServeError::Worker)?;
        let router = http::router(http::App {
            queue,
            info,
            preprocessor,
            defaults,
            config,
            budget,
            metrics: metrics.clone(),
        });
        Ok(Self {
            router,
            worker,
            metrics,
            connections,
        })
    }

    /// The routes, to serve with `axum::serve` or nest in a larger application. The inference
    /// thread stops when every copy is dropped. The limits of requests (body, memory, images,
    /// queue, timeouts) are in the routes; those of connections (count, header timeout,
    /// shutdown deadline) are [`Server::run`]'s.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting (new connections are
    /// refused), finishes the requests in flight (their images included) for at most
    /// [`ServeConfig::shutdown_timeout`], closes the connections left and stops the inference
    /// thread. HTTP/1.1 with keep-alive; at most [`ServeConfig::max_connections`] connections are
    /// open (more wait in the listener's backlog), and one that does not send a request's head
    /// within [`ServeConfig::header_timeout`] is closed, idle keep-alive ones included.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Stopped, ServeError> {
        let Self {
            router,
            worker,
            metrics,
            connections: limits,
        } = self;
        let slots = Arc::new(Semaphore::new(limits.max));
        let (closing, closing_rx) = tokio::sync::watch::channel(false);
        let mut open = tokio::task::JoinSet::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        let service = TowerToHyperService::new(router);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            while open.try_join_next().is_some() {}
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of descriptors or a connection reset before it was accepted: the
                    // listener is fine; wait a little for descriptors to come back.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let connection = http.serve_connection(TokioIo::new(stream), service.clone());
            let mut closing = closing_rx.clone();
            let gauge = metrics.connections.clone();
            gauge.inc();
            open.spawn(async move {
                let _slot = slot;
                let mut connection = std::pin::pin!(connection);
                let closed = async move {
                    let _ = closing.wait_for(|c| *c).await;
                };
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = closed => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
                gauge.dec();
            });
        }
        drop(listener);
        let _ = closing.send(true);
        let finished = tokio::time::timeout(limits.shutdown_timeout, async {
            while open.join_next().await.is_some() {}
        })
        .await;
        let closed_at_deadline = open.len();
        if finished.is_err() {
            // Past the deadline: the connections left are closed (their requests dropped).
            metrics.connections.sub(closed_at_deadline as i64);
            open.shutdown().await;
        }
        // The routes (and with them the queue's senders) are gone: the worker drains and ends.
        drop(service);
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|_| ServeError::WorkerPanicked)?
            .map_err(|_| ServeError::WorkerPanicked)?;
        Ok(Stopped { closed_at_deadline })
    }
}

/// How [`Server::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Connections still open at the shutdown deadline, closed without an answer.
    pub closed_at_deadline: usize,
}
