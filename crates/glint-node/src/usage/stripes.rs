//! Values kept in one copy per core.
//!
//! Every request adds to its version's counters. With one shared copy, the cores of a
//! busy node take turns owning its cache lines, and each add waits for the line to come
//! over from the other core. Here each thread writes the copy its own index picks (the
//! runtime's worker threads get one each), and the rare readers (the usage flusher, a
//! Prometheus scrape, the dashboard) visit every copy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

/// One copy per core the node may use, up to 8: a node meters every version it serves
/// (a version's copies take about 4 KiB at 8), and beyond 8 threads share copies, which
/// costs a shared line again but never a wrong count.
static COUNT: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
});

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's index, given at its first use: the worker threads, which meter
    /// nearly every request, come first and so get copies of their own.
    static THREAD: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// Two cache lines, so that neighbouring copies share neither a line nor the pair the
/// adjacent-line prefetcher fetches together.
#[repr(align(128))]
struct Padded<T>(Mutex<T>);

/// A `T` per core. A thread locks only its own copy, which no other thread touches
/// unless threads outnumber cores or a reader is visiting.
pub struct Stripes<T> {
    copies: Box<[Padded<T>]>,
}

impl<T: Default> Default for Stripes<T> {
    fn default() -> Self {
        Self {
            copies: (0..*COUNT).map(|_| Padded(Mutex::default())).collect(),
        }
    }
}

impl<T> Stripes<T> {
    /// Runs `f` on this thread's copy.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let i = THREAD.with(|i| *i) % self.copies.len();
        let mut copy = self.copies[i]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut copy)
    }

    /// Every copy, one at a time, for a reader to add up or take from.
    pub fn each(&self) -> impl Iterator<Item = MutexGuard<'_, T>> {
        self.copies
            .iter()
            .map(|c| c.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_threads_add_is_all_found_by_a_reader() {
        let stripes = std::sync::Arc::new(Stripes::<u64>::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stripes = stripes.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stripes.with(|n| *n += 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(stripes.each().map(|n| *n).sum::<u64>(), 4000);
        assert_eq!(stripes.each().count(), *COUNT);
    }
}
