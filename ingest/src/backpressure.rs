//! The memory budget between the consumer and the indexers.
//!
//! The consumer charges each payload before handing it to an indexer, the indexer
//! refunds it once the payload is in the index writer. Above the budget the consumer
//! pauses its partitions (it never buffers without bound); below half it resumes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
pub struct Budget {
    in_flight: Arc<AtomicU64>,
    limit: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Budget {
        Budget { in_flight: Arc::new(AtomicU64::new(0)), limit }
    }

    pub fn charge(&self, bytes: u64) {
        self.in_flight.fetch_add(bytes, Ordering::AcqRel);
    }

    pub fn refund(&self, bytes: u64) {
        self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Time to pause the partitions.
    pub fn exhausted(&self) -> bool {
        self.in_flight() >= self.limit
    }

    /// Time to resume them: hysteresis avoids flapping at the limit.
    pub fn recovered(&self) -> bool {
        self.in_flight() <= self.limit / 2
    }
}
