//! The node's budget of idle instances: each kept instance (WASI 0.2's pool, WASI 0.3's
//! workers) holds pooling-allocator slots while it waits, so the node caps how many wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many instances sit idle across a node, and the most that may.
#[derive(Debug)]
pub struct IdleBudget {
    idle: AtomicUsize,
    max: usize,
}

impl IdleBudget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            idle: AtomicUsize::new(0),
            max,
        })
    }

    /// Instances idle in every pool of the node right now.
    pub fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    pub(crate) fn try_take(&self) -> bool {
        self.idle
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn give_back(&self, n: usize) {
        self.idle.fetch_sub(n, Ordering::AcqRel);
    }
}
