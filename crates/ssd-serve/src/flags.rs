//! The server's limits as command-line flags (`ssd serve`'s), in the units a user types: MiB,
//! milliseconds, seconds, megapixels. A flag not given keeps [`ServeConfig::default`]'s value,
//! and its help shows that value ([`ServeFlags::show_defaults`]): every default is stated once,
//! in [`ServeConfig`].

use std::time::Duration;

use ssd_core::check_setting;

use crate::ranges::{
    MAX_BATCH, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_IMAGES, MAX_MEMORY_BYTES, MAX_PIXELS,
    MAX_QUEUE, MAX_TIMEOUT, MAX_WAIT,
};
use crate::{ServeConfig, ServeError};

/// The limits of `ssd serve` as flags; each range is checked in the flag's own unit.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct ServeFlags {
    /// Most images run at once by the inference worker (1: no batching), 1 to 1024.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Longest the worker waits for a batch to fill, in milliseconds, 0 to 1000.
    #[arg(long)]
    pub max_wait_ms: Option<u64>,
    /// Images that may wait for the worker (each holds the network input: 1 MiB at 300 px);
    /// more get 503 with Retry-After. 1 to 100000.
    #[arg(long)]
    pub queue: Option<usize>,
    /// Largest request body, in MiB, 1 to 4096.
    #[arg(long)]
    pub max_body_mib: Option<usize>,
    /// Largest image, in megapixels (checked from its header before decoding), up to
    /// 268.435456 (16384 x 16384).
    #[arg(long)]
    pub max_megapixels: Option<f64>,
    /// Most images in one request, 1 to 1024.
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Longest a request may take, in seconds, 1 to 3600.
    #[arg(long)]
    pub timeout_s: Option<u64>,
    /// Memory that request bodies and images being decoded may hold at once, in MiB (at least
    /// --max-body-mib): a request that needs more than is free gets 503 with Retry-After, an
    /// image whose decoding alone needs more than all of it 413.
    #[arg(long)]
    pub memory_budget_mib: Option<u64>,
    /// Most client connections open at once (more wait to be accepted), 1 to 65536.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Longest a client may take to send a request's head, and an idle keep-alive connection
    /// may stay open, in seconds, 1 to 3600.
    #[arg(long)]
    pub header_timeout_s: Option<u64>,
    /// On Ctrl-C or SIGTERM, longest the requests in flight are given before the remaining
    /// connections are closed, in seconds, 0 to 3600.
    #[arg(long)]
    pub shutdown_timeout_s: Option<u64>,
}

/// Every flag's value, given or default, in the flag's unit.
struct Values {
    max_batch: usize,
    max_wait_ms: u64,
    queue: usize,
    max_body_mib: usize,
    max_megapixels: f64,
    max_images: usize,
    timeout_s: u64,
    memory_budget_mib: u64,
    max_connections: usize,
    header_timeout_s: u64,
    shutdown_timeout_s: u64,
}

impl ServeFlags {
    fn values(&self) -> Values {
        let d = ServeConfig::default();
        Values {
            max_batch: self.max_batch.unwrap_or(d.max_batch),
            max_wait_ms: self.max_wait_ms.unwrap_or(d.max_wait.as_millis() as u64),
            queue: self.queue.unwrap_or(d.queue_capacity),
            max_body_mib: self.max_body_mib.unwrap_or(d.max_body_bytes >> 20),
            max_megapixels: self.max_megapixels.unwrap_or(d.max_pixels as f64 / 1e6),
            max_images: self.max_images.unwrap_or(d.max_images_per_request),
            timeout_s: self.timeout_s.unwrap_or(d.request_timeout.as_secs()),
            memory_budget_mib: self
                .memory_budget_mib
                .unwrap_or(d.memory_budget_bytes >> 20),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_timeout_s: self.header_timeout_s.unwrap_or(d.header_timeout.as_secs()),
            shutdown_timeout_s: self
                .shutdown_timeout_s
                .unwrap_or(d.shutdown_timeout.as_secs()),
        }
    }

    /// The server's settings: [`ServeConfig::default`] with every flag given, each checked in
    /// its own unit (an error names the flag and its range).
    pub fn config(&self, backend: &str) -> Result<ServeConfig, ServeError> {
        let v = self.values();
        let seconds = MAX_TIMEOUT.as_secs();
        let checks = [
            check_setting(
                "--max-batch",
                (1..=MAX_BATCH).contains(&v.max_batch),
                "in 1..=1024",
                v.max_batch,
            ),
            check_setting(
                "--max-wait-ms",
                v.max_wait_ms <= MAX_WAIT.as_millis() as u64,
                "in 0..=1000",
                v.max_wait_ms,
            ),
            check_setting(
                "--queue",
                (1..=MAX_QUEUE).contains(&v.queue),
                "in 1..=100000",
                v.queue,
            ),
            check_setting(
                "--max-body-mib",
                (1..=MAX_BODY_BYTES >> 20).contains(&v.max_body_mib),
                "in 1..=4096",
                v.max_body_mib,
            ),
            check_setting(
                "--max-megapixels",
                (1e-6..=MAX_PIXELS as f64 / 1e6).contains(&v.max_megapixels),
                "in [0.000001, 268.435456] (one pixel to 16384 x 16384)",
                v.max_megapixels,
            ),
            check_setting(
                "--max-images",
                (1..=MAX_IMAGES).contains(&v.max_images),
                "in 1..=1024",
                v.max_images,
            ),
            check_setting(
                "--timeout-s",
                (1..=seconds).contains(&v.timeout_s),
                "in 1..=3600",
                v.timeout_s,
            ),
            check_setting(
                "--memory-budget-mib",
                (v.max_body_mib as u64..=MAX_MEMORY_BYTES >> 20).contains(&v.memory_budget_mib),
                "at least --max-body-mib and at most 1048576 (1 TiB)",
                v.memory_budget_mib,
            ),
            check_setting(
                "--max-connections",
                (1..=MAX_CONNECTIONS).contains(&v.max_connections),
                "in 1..=65536",
                v.max_connections,
            ),
            check_setting(
                "--header-timeout-s",
                (1..=seconds).contains(&v.header_timeout_s),
                "in 1..=3600",
                v.header_timeout_s,
            ),
            check_setting(
                "--shutdown-timeout-s",
                v.shutdown_timeout_s <= seconds,
                "in 0..=3600",
                v.shutdown_timeout_s,
            ),
        ];
        if let Some(e) = checks.into_iter().find_map(Result::err) {
            return Err(ServeError::Config {
                name: e.name,
                problem: format!("must be {}, got {}", e.allowed, e.value),
            });
        }
        let config = ServeConfig {
            max_batch: v.max_batch,
            max_wait: Duration::from_millis(v.max_wait_ms),
            queue_capacity: v.queue,
            max_body_bytes: v.max_body_mib << 20,
            max_pixels: ((v.max_megapixels * 1e6).round() as u64).max(1),
            max_images_per_request: v.max_images,
            request_timeout: Duration::from_secs(v.timeout_s),
            memory_budget_bytes: v.memory_budget_mib << 20,
            max_connections: v.max_connections,
            header_timeout: Duration::from_secs(v.header_timeout_s),
            shutdown_timeout: Duration::from_secs(v.shutdown_timeout_s),
            backend: backend.to_owned(),
        };
        // Within the flags' ranges every setting is within the library's.
        config.validate()?;
        Ok(config)
    }

    /// `command` with each flag's help ending in its default (`[default: 64]`), from
    /// [`ServeConfig::default`].
    pub fn show_defaults(command: clap::Command) -> clap::Command {
        let v = ServeFlags::default().values();
        let shown = [
            ("max_batch", v.max_batch.to_string()),
            ("max_wait_ms", v.max_wait_ms.to_string()),
            ("queue", v.queue.to_string()),
            ("max_body_mib", v.max_body_mib.to_string()),
            ("max_megapixels", v.max_megapixels.to_string()),
            ("max_images", v.max_images.to_string()),
            ("timeout_s", v.timeout_s.to_string()),
            ("memory_budget_mib", v.memory_budget_mib.to_string()),
            ("max_connections", v.max_connections.to_string()),
            ("header_timeout_s", v.header_timeout_s.to_string()),
            ("shutdown_timeout_s", v.shutdown_timeout_s.to_string()),
        ];
        shown.into_iter().fold(command, |command, (id, value)| {
            command.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {value}]"))
            })
        })
    }
}
