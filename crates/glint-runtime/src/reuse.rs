//! Instance reuse (`[scaling] reuse = true`): one version's instances kept between
//! requests, the way Cloudflare Workers keep an isolate warm.
//!
//! A fresh instance per request is the default and the safest: nothing survives a
//! request. A Python or JavaScript guest, though, spends most of a small request starting
//! its interpreter's instance, so a version may opt in to reuse. Then:
//! - an instance serves one request at a time: it is in the pool only while idle;
//! - it is thrown away after any failure (trap, limit, timeout), since its state may be
//!   broken, and retired after `reuse_max_requests` requests or `reuse_max_seconds`;
//! - each [`InstancePool`] belongs to one version of one function of one tenant (the node
//!   keeps it in the version's route slot), so an instance never serves anything else;
//! - idle instances hold pooling-allocator slots, so the node caps how many sit idle in
//!   all, and [`InstancePool::sweep`] drops the expired ones.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;

use crate::budget::IdleBudget;
use crate::guest::GuestState;
use crate::manifest::Scaling;
use crate::workers::{Room, Workers};

/// An instance between requests.
pub(crate) struct Warm {
    pub(crate) store: Store<GuestState>,
    pub(crate) proxy: Proxy,
    pub(crate) born: Instant,
    pub(crate) served: u32,
    /// Its slot in the pooling allocator, held while it waits to be reused.
    pub(crate) slot: tokio::sync::OwnedSemaphorePermit,
}

/// A WASI 0.3 version's workers, one per data-plane thread, and the room they share: a
/// request that finds no slot free is served by an instance of another thread that has
/// room. [`InstancePool::clear`] starts a new set.
#[derive(Default)]
struct Wasi03 {
    room: Arc<Room>,
    by_thread: Vec<Option<Arc<Workers>>>,
}

/// The idle instances of one version.
pub struct InstancePool {
    idle: Mutex<Vec<Warm>>,
    budget: Arc<IdleBudget>,
    scaling: Scaling,
    /// A WASI 0.3 version's instances, made on its first request: they keep themselves
    /// (see [`crate::workers`]).
    /// One per data-plane thread (index 0: any other thread), read without a lock:
    /// with `--data-plane-threads` every request of every thread looks here.
    wasi03: ArcSwap<Wasi03>,
    /// Held while workers are made or cleared, so two first requests make one.
    making: Mutex<()>,
}

thread_local! {
    /// The data-plane thread this is (`--data-plane-threads`), from 1; 0 elsewhere.
    static THREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks this thread as data-plane thread `i` (from 1): a WASI 0.3 version keeps
/// workers of its own for each such thread, so a request served there runs on an
/// instance driven there.
pub fn bind_thread(i: usize) {
    THREAD.with(|c| c.set(i));
}

impl InstancePool {
    pub fn new(scaling: &Scaling, budget: Arc<IdleBudget>) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            budget,
            scaling: *scaling,
            wasi03: ArcSwap::default(),
            making: Mutex::new(()),
        }
    }

    /// The version's WASI 0.3 workers of data-plane thread `thread`, if made.
    pub(crate) fn workers_on(&self, thread: usize) -> Option<Arc<Workers>> {
        self.wasi03.load().by_thread.get(thread)?.clone()
    }

    /// The version's WASI 0.3 workers, made by `make` the first time.
    /// `make` is given the room the version's workers of every thread share, and the
    /// thread's index.
    pub(crate) fn workers(
        &self,
        make: impl FnOnce(&Scaling, Arc<Room>, usize) -> Workers,
    ) -> Arc<Workers> {
        let thread = THREAD.with(|c| c.get());
        if let Some(Some(workers)) = self.wasi03.load().by_thread.get(thread) {
            return workers.clone();
        }
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.wasi03.load_full();
        if let Some(Some(workers)) = current.by_thread.get(thread) {
            return workers.clone();
        }
        let workers = Arc::new(make(&self.scaling, current.room.clone(), thread));
        let mut by_thread = current.by_thread.clone();
        if by_thread.len() <= thread {
            by_thread.resize(thread + 1, None);
        }
        by_thread[thread] = Some(workers.clone());
        self.wasi03.store(Arc::new(Wasi03 {
            room: current.room.clone(),
            by_thread,
        }));
        workers
    }

    fn expired(&self, warm: &Warm, now: Instant) -> bool {
        warm.served >= self.scaling.reuse_max_requests
            || now.duration_since(warm.born) >= Duration::from_secs(self.scaling.reuse_max_seconds)
    }

    /// An idle instance, if one is still young enough; the most recently used first, as
    /// its memory is likeliest to be in cache.
    pub(crate) fn take(&self) -> Option<Warm> {
        let now = Instant::now();
        loop {
            // The lock is held only for the pop: an expired instance is freed after it.
            let warm = self.idle.lock().ok()?.pop()?;
            self.budget.give_back(1);
            if !self.expired(&warm, now) {
                return Some(warm);
            }
        }
    }

    /// Keeps an instance that just served a request successfully, unless it is due to
    /// retire or the node has enough idle instances already.
    pub(crate) fn put(&self, warm: Warm) {
        if self.expired(&warm, Instant::now()) || !self.budget.try_take() {
            return;
        }
        match self.idle.lock() {
            Ok(mut idle) => idle.push(warm),
            Err(_) => self.budget.give_back(1),
        }
    }

    /// Drops instances past their age. The node calls this now and then, so an idle
    /// version does not hold instances (and their memory) for ever.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.drop_where(|w| self.expired(w, now));
    }

    /// Drops every idle instance, as when the version's code is evicted. WASI 0.3
    /// instances already running finish what they serve and then end.
    pub fn clear(&self) {
        self.drop_where(|_| true);
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        self.wasi03.store(Arc::default());
    }

    fn drop_where(&self, retire: impl Fn(&Warm) -> bool) {
        let retired: Vec<Warm> = match self.idle.lock() {
            Ok(mut idle) => {
                let (gone, keep) = std::mem::take(&mut *idle).into_iter().partition(retire);
                *idle = keep;
                gone
            }
            Err(_) => return,
        };
        self.budget.give_back(retired.len());
        // Dropped outside the lock: freeing an instance returns its memory to the pool.
        drop(retired);
    }
}

impl Drop for InstancePool {
    fn drop(&mut self) {
        let n = self.idle.get_mut().map_or(0, |i| i.len());
        self.budget.give_back(n);
    }
}
