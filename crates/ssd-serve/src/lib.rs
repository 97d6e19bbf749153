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
//! `top_k`, `nms`), `GET /v1/model`, `GET /health`, `GET /metrics`, `GET /` (the page). Errors are
//! JSON `{"error": "..."}` with a 4xx/5xx status; a full queue is `503` with `Retry-After`.
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

mod http;
pub mod metrics;
mod worker;

use std::future::Future;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use ssd_model::{Detector, PostProcessConfig};
use tokio::net::TcpListener;

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
    /// The backend's name, as `GET /v1/model` reports it.
    pub backend: String,
}

impl Default for ServeConfig {
    /// Batches of up to 8 images, 5 ms to fill; 64 images queued; 32 MiB bodies, 50 MP images,
    /// 16 images per request; 60 s per request.
    fn default() -> Self {
        Self {
            max_batch: 8,
            max_wait: Duration::from_millis(5),
            queue_capacity: 64,
            max_body_bytes: 32 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_images_per_request: 16,
            request_timeout: Duration::from_secs(60),
            backend: String::new(),
        }
    }
}

impl ServeConfig {
    /// An error naming the first setting that is out of range.
    pub fn validate(&self) -> Result<(), ServeError> {
        let positive = [
            ("max_batch", self.max_batch as u64),
            ("queue_capacity", self.queue_capacity as u64),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_pixels", self.max_pixels),
            ("max_images_per_request", self.max_images_per_request as u64),
            ("request_timeout", self.request_timeout.as_millis() as u64),
        ];
        match positive.into_iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(ServeError::Config {
                name,
                problem: "must be at least 1".into(),
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
    /// The thresholds a request gets unless its query sets them.
    pub defaults: Thresholds,
    /// Most images per batch.
    pub max_batch: usize,
    /// Most images per request.
    pub max_images_per_request: usize,
}

/// Post-processing thresholds under the query parameters' names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Lowest score reported.
    pub min_score: f32,
    /// Most detections per image.
    pub top_k: usize,
    /// NMS IoU threshold.
    pub nms: f32,
}

impl From<&PostProcessConfig> for Thresholds {
    fn from(p: &PostProcessConfig) -> Self {
        Self {
            min_score: p.score_threshold,
            top_k: p.max_detections,
            nms: p.nms_iou,
        }
    }
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
            defaults: detector.post_process().into(),
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
        let (queue, worker) =
            worker::spawn(detector, batching, metrics.clone()).map_err(ServeError::Worker)?;
        let router = http::router(http::App {
            queue,
            info,
            preprocessor,
            defaults,
            config,
            metrics: metrics.clone(),
        });
        Ok(Self {
            router,
            worker,
            metrics,
        })
    }

    /// The routes, to serve with `axum::serve` or nest in a larger application. The inference
    /// thread stops when every copy is dropped.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, finishes the
    /// requests in flight (their images included) and stops the inference thread.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self { router, worker, .. } = self;
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Io)?;
        // The routes (and with them the queue's senders) are gone: the worker drains and ends.
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|_| ServeError::WorkerPanicked)?
            .map_err(|_| ServeError::WorkerPanicked)
    }
}
