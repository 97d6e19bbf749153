//! Batches in a fixed order, prepared ahead by worker threads: the one way `ssd` makes batches,
//! for training and for evaluation.
//!
//! Batch `k` of a run depends only on `k` (which images: [`BatchPlan`]; how they are augmented:
//! `(seed, epoch, index)`), never on the number of workers or their timing. That is what makes a
//! resumed run continue with exactly the batches the uninterrupted run would have seen: training
//! resumes at iteration `N` by starting the stream at batch `N`.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::{DataError, SampleRng, SsdDataset, SsdItem};

/// Which images make up batch `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Images in the dataset.
    pub len: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Shuffle seed; `None` keeps dataset order (evaluation).
    pub shuffle: Option<u64>,
    /// Keep a last, smaller batch (evaluation) instead of dropping it (training).
    pub keep_partial: bool,
}

impl BatchPlan {
    /// Batches in one pass over the data (at least 1 for a non-empty dataset).
    pub fn batches_per_epoch(&self) -> u64 {
        let bs = self.batch_size.max(1);
        let n = if self.keep_partial {
            self.len.div_ceil(bs)
        } else {
            (self.len / bs).max(usize::from(self.len > 0))
        };
        n as u64
    }

    /// The epoch of batch `k` and its dataset indices.
    pub fn batch(&self, k: u64) -> (u64, Vec<usize>) {
        let per_epoch = self.batches_per_epoch().max(1);
        let epoch = k / per_epoch;
        let position = (k % per_epoch) as usize;
        let order = self.order(epoch);
        let bs = self.batch_size.max(1);
        let start = (position * bs).min(order.len());
        let end = (start + bs).min(order.len());
        (epoch, order[start..end].to_vec())
    }

    /// Dataset indices in the order of `epoch`: a Fisher-Yates shuffle seeded by
    /// `(seed, epoch)`, or dataset order.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        if let Some(seed) = self.shuffle {
            // A stream of its own: the per-sample streams use the image index, never u64::MAX.
            let mut rng = SampleRng::for_sample(seed, epoch, u64::MAX);
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        order
    }
}

type Message = Result<(u64, Vec<SsdItem>), DataError>;

/// Batches `start..end` of a [`BatchPlan`], in order, items prepared by `workers` threads (batch
/// `k` by worker `k % workers`, each a few batches ahead).
pub struct Prefetcher {
    receivers: Vec<Receiver<Message>>,
    handles: Vec<JoinHandle<()>>,
    next: u64,
    start: u64,
    end: u64,
}

impl Prefetcher {
    /// Starts the workers (at least one).
    pub fn new(dataset: SsdDataset, plan: BatchPlan, start: u64, end: u64, workers: usize) -> Self {
        let workers = workers.max(1);
        let plan = Arc::new(plan);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx): (SyncSender<Message>, _) = sync_channel(2);
            let dataset = dataset.clone();
            let plan = Arc::clone(&plan);
            let first = start + w as u64;
            handles.push(std::thread::spawn(move || {
                let mut k = first;
                while k < end {
                    let (epoch, indices) = plan.batch(k);
                    let items: Result<Vec<SsdItem>, DataError> =
                        indices.iter().map(|&i| dataset.item_at(i, epoch)).collect();
                    let failed = items.is_err();
                    // A closed channel means the consumer stopped: so do we.
                    if tx.send(items.map(|items| (epoch, items))).is_err() || failed {
                        return;
                    }
                    k += workers as u64;
                }
            }));
            receivers.push(rx);
        }
        Self {
            receivers,
            handles,
            next: start,
            start,
            end,
        }
    }
}

impl Iterator for Prefetcher {
    /// `(batch number, epoch, items)`, or the first error of a worker.
    type Item = Result<(u64, u64, Vec<SsdItem>), DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let k = self.next;
        let worker = ((k - self.start) % self.receivers.len() as u64) as usize;
        self.next += 1;
        match self.receivers[worker].recv() {
            Ok(Ok((epoch, items))) => Some(Ok((k, epoch, items))),
            Ok(Err(e)) => {
                self.next = self.end;
                Some(Err(e))
            }
            // A worker that panicked: report it as data loss rather than hang.
            Err(_) => {
                self.next = self.end;
                None
            }
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channels stops the workers at their next send.
        self.receivers.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_each_epoch_once_and_depend_only_on_the_batch_number() {
        let plan = BatchPlan {
            len: 10,
            batch_size: 3,
            shuffle: Some(7),
            keep_partial: false,
        };
        assert_eq!(plan.batches_per_epoch(), 3);
        let mut seen: Vec<usize> = (0..3).flat_map(|k| plan.batch(k).1).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 9, "three full batches of distinct images");
        assert_eq!(plan.batch(3).0, 1);
        assert_ne!(plan.order(0), plan.order(1), "each epoch reshuffles");
        assert_eq!(plan.batch(4), plan.clone().batch(4));
        let eval = BatchPlan {
            len: 10,
            batch_size: 4,
            shuffle: None,
            keep_partial: true,
        };
        assert_eq!(eval.batches_per_epoch(), 3);
        assert_eq!(eval.batch(2), (0, vec![8, 9]));
        let tiny = BatchPlan {
            len: 2,
            batch_size: 8,
            shuffle: Some(1),
            keep_partial: false,
        };
        assert_eq!(tiny.batches_per_epoch(), 1);
        assert_eq!(tiny.batch(5).1.len(), 2);
    }
}
