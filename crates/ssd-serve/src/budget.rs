//! The memory budget: request bodies being read and images being decoded share one amount of
//! memory, reserved before it is allocated. A request that does not fit now is refused at once
//! (`503` with `Retry-After`, as a full queue is); one that could never fit is `413`.

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: reservations are rounded up to whole KiB (a semaphore's permits).
const UNIT: u64 = 1024;

/// Memory that requests reserve before they allocate it.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    total: u64,
    reserved: IntGauge,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// More than the whole budget: never possible.
    TooLarge {
        /// Bytes asked for.
        bytes: u64,
        /// The budget.
        total: u64,
    },
    /// Not available now: other requests hold it.
    Busy,
}

impl Budget {
    /// A budget of `total` bytes (at most [`Budget::MAX`]), its use shown in `reserved`.
    pub(crate) fn new(total: u64, reserved: IntGauge) -> Self {
        let total = total.min(Self::MAX);
        Self {
            permits: Arc::new(Semaphore::new(units(total) as usize)),
            total,
            reserved,
        }
    }

    /// The largest budget: 1 TiB.
    pub(crate) const MAX: u64 = 1 << 40;

    /// The budget in bytes.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Reserves `bytes` without waiting; released when the [`Reservation`] is dropped.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<Reservation, Refusal> {
        if bytes > self.total {
            return Err(Refusal::TooLarge {
                bytes,
                total: self.total,
            });
        }
        let n = units(bytes);
        if n == 0 {
            return Ok(Reservation::none(self));
        }
        let Ok(count) = u32::try_from(n) else {
            return Err(Refusal::TooLarge {
                bytes,
                total: self.total,
            });
        };
        let permit = Arc::clone(&self.permits)
            .try_acquire_many_owned(count)
            .map_err(|_| Refusal::Busy)?;
        self.reserved.add((n * UNIT) as i64);
        Ok(Reservation {
            permit: Some(permit),
            reserved: self.reserved.clone(),
        })
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

/// Memory held from a [`Budget`] until dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    reserved: IntGauge,
}

impl Reservation {
    /// An empty reservation of `budget`, to [`Reservation::add`] to.
    pub(crate) fn none(budget: &Budget) -> Self {
        Self {
            permit: None,
            reserved: budget.reserved.clone(),
        }
    }

    /// Holds `other`'s memory too, until this one is dropped.
    pub(crate) fn add(&mut self, mut other: Reservation) {
        match (&mut self.permit, other.permit.take()) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, theirs) => self.permit = theirs,
            (Some(_), None) => {}
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.reserved
                .sub((permit.num_permits() as u64 * UNIT) as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: u64) -> Budget {
        Budget::new(bytes, IntGauge::new("reserved", "test").expect("gauge"))
    }

    #[test]
    fn reservations_hold_memory_until_dropped() {
        let b = budget(10 * 1024);
        let first = b.reserve(6 * 1024).expect("fits");
        assert_eq!(b.reserved.get(), 6 * 1024);
        assert_eq!(b.reserve(5 * 1024).err(), Some(Refusal::Busy));
        assert_eq!(
            b.reserve(11 * 1024).err(),
            Some(Refusal::TooLarge {
                bytes: 11 * 1024,
                total: 10 * 1024
            })
        );
        let mut second = b.reserve(1).expect("one byte is one KiB");
        second.add(b.reserve(3 * 1024).expect("fits"));
        assert_eq!(b.reserved.get(), 10 * 1024);
        drop(first);
        assert_eq!(b.reserved.get(), 4 * 1024);
        drop(second);
        assert_eq!(b.reserved.get(), 0);
        assert!(b.reserve(10 * 1024).is_ok());
    }
}
