//! The server's metrics, in Prometheus' text exposition format (`GET /metrics`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric the server records, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route (`/v1/detect`, ...; `unmatched` for unknown paths), method and
    /// status code.
    pub requests: IntCounterVec,
    /// Seconds from a request's arrival to its answer, by route.
    pub latency: HistogramVec,
    /// Images per batch the inference worker ran.
    pub batch_size: Histogram,
    /// Images waiting for the inference worker.
    pub queue_depth: IntGauge,
    /// Images detected.
    pub images: IntCounter,
    /// Requests refused because the queue was full.
    pub rejected: IntCounter,
    /// Bytes of the memory budget held by request bodies and images being decoded.
    pub memory_reserved: IntGauge,
    /// Requests refused because the memory budget was taken by others.
    pub memory_busy: IntCounter,
    /// Open client connections.
    pub connections: IntGauge,
}

impl Metrics {
    /// Fresh metrics (all zero), named `ssd_*`.
    pub fn new() -> Self {
        let requests = IntCounterVec::new(
            Opts::new("ssd_http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "ssd_http_request_duration_seconds",
                "Time from a request's arrival to its answer",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "ssd_batch_size",
                "Images per batch run by the inference worker",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )
        .expect("valid metric");
        let queue_depth =
            IntGauge::new("ssd_queue_depth", "Images waiting for the inference worker")
                .expect("valid metric");
        let images = IntCounter::new("ssd_images_total", "Images detected").expect("valid metric");
        let rejected = IntCounter::new(
            "ssd_queue_full_total",
            "Requests refused with 503 because the queue was full",
        )
        .expect("valid metric");
        let memory_reserved = IntGauge::new(
            "ssd_memory_reserved_bytes",
            "Bytes of the memory budget held by request bodies and images being decoded",
        )
        .expect("valid metric");
        let memory_busy = IntCounter::new(
            "ssd_memory_busy_total",
            "Requests refused with 503 because the memory budget was held by others",
        )
        .expect("valid metric");
        let connections =
            IntGauge::new("ssd_open_connections", "Open client connections").expect("valid metric");
        let registry = Registry::new();
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(batch_size.clone()),
            Box::new(queue_depth.clone()),
            Box::new(images.clone()),
            Box::new(rejected.clone()),
            Box::new(memory_reserved.clone()),
            Box::new(memory_busy.clone()),
            Box::new(connections.clone()),
        ] {
            registry.register(metric).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            latency,
            batch_size,
            queue_depth,
            images,
            rejected,
            memory_reserved,
            memory_busy,
            connections,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only for a malformed metric family, which ours are not.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
