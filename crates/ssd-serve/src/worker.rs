//! The inference worker: one thread owns the [`Detector`] and runs the images of every client in
//! batches of up to `max_batch`, waiting at most `max_wait` for a batch to fill. The queue in
//! front of it is bounded by a count, not by a buffer allocated up front: its memory grows
//! with the images waiting.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ssd_model::{Detector, ImageDetections, PostProcessConfig};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// One image waiting for the worker: its network input, original size, thresholds and where
/// the answer goes.
pub(crate) struct Job {
    /// The image's name in the answer.
    pub name: String,
    /// `Detector::preprocess` of the image.
    pub pixels: Vec<f32>,
    /// Original width and height.
    pub size: [u32; 2],
    /// Its request's thresholds.
    pub post: PostProcessConfig,
    /// Where its detections go (an error message if the batch failed).
    pub reply: oneshot::Sender<Result<ImageDetections, String>>,
}

/// The sending side of the bounded queue in front of the worker.
#[derive(Clone)]
pub(crate) struct Queue {
    sender: Sender<Job>,
    /// Jobs sent and not yet taken by the worker.
    depth: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Metrics,
}

/// Why a job was not queued.
pub(crate) enum SubmitError {
    /// The queue holds its capacity already.
    Full,
    /// The worker has stopped.
    Stopped,
}

impl Queue {
    /// Queues `job` without waiting.
    pub(crate) fn submit(&self, job: Job) -> Result<(), SubmitError> {
        // Counted before sending: the worker may take the job (and decrement) at once.
        if self.depth.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Full);
        }
        self.metrics.queue_depth.inc();
        self.sender.send(job).map_err(|_| {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            self.metrics.queue_depth.dec();
            SubmitError::Stopped
        })
    }
}

/// Batching limits of the worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batching {
    pub max_batch: usize,
    pub max_wait: Duration,
    pub capacity: usize,
}

/// Starts the worker thread; it stops once every [`Queue`] is dropped and the queue is empty.
pub(crate) fn spawn(
    detector: Detector,
    batching: Batching,
    metrics: Metrics,
) -> std::io::Result<(Queue, JoinHandle<()>)> {
    let (sender, receiver) = channel();
    let depth = Arc::new(AtomicUsize::new(0));
    let queue = Queue {
        sender,
        depth: Arc::clone(&depth),
        capacity: batching.capacity,
        metrics: metrics.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("ssd-inference".into())
        .spawn(move || run(detector, receiver, &depth, batching, metrics))?;
    Ok((queue, handle))
}

fn run(
    detector: Detector,
    receiver: Receiver<Job>,
    depth: &AtomicUsize,
    batching: Batching,
    metrics: Metrics,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + batching.max_wait;
        while batch.len() < batching.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        depth.fetch_sub(batch.len(), Ordering::SeqCst);
        metrics.queue_depth.sub(batch.len() as i64);
        // A client that gave up (timeout, closed connection) no longer waits for its images.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        metrics.batch_size.observe(batch.len() as f64);
        let results = detect(&detector, &mut batch);
        metrics.images.inc_by(batch.len() as u64);
        for (job, result) in batch.into_iter().zip(results) {
            // The client may have gone since; nothing to do then.
            let _ = job.reply.send(result);
        }
    }
}

/// The batch's detections, one result per job; a failure (an error or a panic of the backend)
/// fails every image of the batch, never the worker.
fn detect(detector: &Detector, batch: &mut [Job]) -> Vec<Result<ImageDetections, String>> {
    let sizes: Vec<[u32; 2]> = batch.iter().map(|j| j.size).collect();
    let posts: Vec<PostProcessConfig> = batch.iter().map(|j| j.post).collect();
    let mut pixels = Vec::with_capacity(batch.iter().map(|j| j.pixels.len()).sum());
    for job in batch.iter_mut() {
        pixels.append(&mut job.pixels);
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        detector.detect_preprocessed(pixels, &sizes, &posts)
    }));
    match outcome {
        Ok(Ok(found)) => batch
            .iter()
            .zip(found)
            .map(|(job, detections)| Ok(detector.describe(&job.name, job.size, &detections)))
            .collect(),
        Ok(Err(e)) => vec![Err(format!("inference failed: {e}")); batch.len()],
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            vec![Err(format!("inference failed: {message}")); batch.len()]
        }
    }
}
