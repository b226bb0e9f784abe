//! WASI 0.3 instances kept between requests (`[scaling] reuse = true`), each serving up
//! to `max_concurrent_per_instance` requests at once.
//!
//! wasmtime-wasi-http's `ProxyHandler` (what `wasmtime serve` runs) drives the instances:
//! it hands a request to an instance that has room, or starts a new one, and runs each
//! instance's event loop in a task of its own. This module is Glint's policy for it:
//! - an instance takes a slot of the pooling allocator for its life, and an idle one
//!   counts against the node's idle budget, as WASI 0.2's kept instances do;
//! - it is retired after `reuse_max_requests` requests or `reuse_max_seconds`, and
//!   dropped after a trap or a limit: every request it was serving then fails;
//! - each [`Workers`] belongs to one version of one function of one tenant (the node
//!   keeps it in the version's [`crate::InstancePool`]), so an instance never serves
//!   anything else;
//! - with `--data-plane-threads`, a version has workers per thread, and a request is
//!   served by its own thread's instances while a slot is free; when none is, it goes
//!   to an instance of any thread of the version that has room (see [`Room`]).
//!
//! What a request is charged, in a shared instance: its CPU time is the epoch ticks
//! (10 ms) during which the guest ran on its behalf (the component model's call stack
//! names the request's task); its memory is the instance's peak; KV and outbound calls
//! are counted per instance and charged to the requests that end after them. Lines the
//! guest writes go to the log of the oldest request in flight, so with several at once a
//! line may carry another request's execution id; lines the host writes (limits,
//! errors) always carry their own.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::task::AtomicWaker;
use glint_store::Level;
use http_body::{Body, Frame};
use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as ErrorCode3;

use crate::budget::IdleBudget;
use crate::capabilities::{Capabilities, Grants};
use crate::engine::RuntimeStats;
use crate::guest::{EPOCH_TICK, GuestState};
use crate::log::{LogSink, LogStream};
use crate::manifest::{Limits, Scaling};
use crate::outcome::{GuestResponse, InvokeError};
use crate::sandbox::build_store;
use crate::usage::{Usage, UsageSink};

/// The kept WASI 0.3 instances of one version.
pub struct Workers {
    handler: ProxyHandler<VersionWorkers>,
}

/// How often an idle instance checks whether its version's workers were dropped (its
/// code evicted, its config or env changed), so it does not hold a slot until its age.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl Drop for Workers {
    /// The version's pool let go of its workers: their idle instances end soon, and the
    /// busy ones after what they serve.
    fn drop(&mut self) {
        self.handler.state().closed.store(true, Ordering::Relaxed);
    }
}

/// What every instance of the version is made with.
struct VersionWorkers {
    engine: Engine,
    service: ServicePre<GuestState>,
    capabilities: Capabilities,
    grants: Arc<Grants>,
    limits: Limits,
    max_requests: usize,
    max_age: Duration,
    max_concurrent: usize,
    slots: Arc<tokio::sync::Semaphore>,
    max_instances: u32,
    queue_timeout: Duration,
    stats: Arc<RuntimeStats>,
    budget: Arc<IdleBudget>,
    /// Set when the version's pool drops these workers.
    closed: Arc<AtomicBool>,
    room: Arc<Room>,
    /// The data-plane thread whose requests these workers serve first (0: any).
    thread: usize,
}

/// Tells a request waiting for an instance slot that one of the version's instances has
/// room for it after all.
///
/// wasmtime's handler starts a new instance for a request whenever none of the
/// version's instances says it is ready at that moment, which a busy one does not for
/// the instant it takes to start a request. On a node whose slots are all taken, that
/// new instance would wait for a slot for the whole queue time while the instance
/// already running could serve the request an instant later; so the wait also ends
/// when an instance of the version takes requests again, and the request goes back to
/// the handler's queue.
///
/// An instance says it has room when its driver asks it whether to take requests, so a
/// request that starts to wait wakes the version's instances to ask them again: one
/// that became ready just after it last said so, and has had nothing to do since,
/// would otherwise not say it until its next timer.
///
/// With `--data-plane-threads`, the version's workers of every thread share one room:
/// a request whose thread has no instance with room, and finds no slot free, goes to
/// the workers of the thread whose instance said it has room (looked up in the
/// version's [`crate::InstancePool`]).
#[derive(Default)]
pub(crate) struct Room {
    /// Requests waiting for a slot.
    waiting: AtomicUsize,
    notify: tokio::sync::Notify,
    /// The version's live instances.
    instances: Mutex<Vec<Weak<Serving>>>,
    /// The thread of the instance that last said it has room.
    ready: AtomicUsize,
}

impl Room {
    /// An instance of thread `thread` has room: the requests waiting for a slot go to it.
    fn has_room(&self, thread: usize) {
        self.ready.store(thread, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn add(&self, serving: &Arc<Serving>) {
        if let Ok(mut instances) = self.instances.lock() {
            instances.retain(|s| s.strong_count() > 0);
            instances.push(Arc::downgrade(serving));
        }
    }

    /// Wakes the drivers of the version's live instances.
    fn wake_instances(&self) {
        let live: Vec<Arc<Serving>> = match self.instances.lock() {
            Ok(instances) => instances.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => return,
        };
        for serving in live {
            serving.driver.wake();
        }
    }
}

/// The requests one instance is serving, for the CPU time it spends and the lines it
/// writes to be charged to them.
pub(crate) struct Serving {
    requests: Mutex<Vec<Running>>,
    /// The log of the request that started last, for lines written when none runs (work
    /// the guest does after its responses).
    last_log: Mutex<Option<Arc<dyn LogSink>>>,
    /// KV and outbound calls counted since they were last charged to a request.
    pending: Mutex<Usage>,
    peak_memory: Arc<AtomicUsize>,
    max_ticks: u64,
    /// The task that drives the instance (registered by its [`Expiry`]).
    driver: AtomicWaker,
    /// A request started since the instance's event loop last waited: wasmtime's
    /// driver offers the instance no more requests until it has (it assumes the new
    /// one is busy with the CPU), whatever `should_accept_request` says. Set by
    /// `on_request_start`, cleared by [`Expiry`] (polled each time the loop waits); both
    /// run on the driver's task.
    just_started: AtomicBool,
}

struct Running {
    task: GuestTaskId,
    meter: Arc<Meter>,
    /// When the request expires if it has not answered.
    deadline: Instant,
}

/// One request's account, shared by the instance and the response body.
struct Meter {
    started: Instant,
    ticks: AtomicU64,
    /// This request ran past its CPU limit (and so ended the instance).
    over_cpu: AtomicBool,
    log: Arc<dyn LogSink>,
    usage: Arc<dyn UsageSink>,
    /// The function's concurrency permit: held until the response body ends.
    held: Mutex<Option<Box<dyn Send>>>,
    /// Why the instance ended while it served this request, for the caller.
    outcome: Mutex<Option<tokio::sync::oneshot::Sender<InvokeError>>>,
    /// The instance serving it, once one took it.
    serving: Mutex<Option<(Weak<Serving>, GuestTaskId)>>,
    settled: AtomicBool,
    /// Set once the request is past its timeout, by its instance's [`Expiry`].
    expired: AtomicBool,
    /// Wakes the request's [`RequestDeadline`] when it expires.
    expiry: AtomicWaker,
}

impl crate::guest::TaskCharge for Serving {
    fn tick(&self, task: GuestTaskId) -> Option<bool> {
        let requests = self.requests.lock().ok()?;
        let running = requests.iter().find(|r| r.task == task)?;
        let ticks = running.meter.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        if ticks > self.max_ticks {
            running.meter.over_cpu.store(true, Ordering::Relaxed);
            return Some(true);
        }
        Some(false)
    }
}

impl Serving {
    fn remove(&self, task: GuestTaskId) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.retain(|r| r.task != task);
        }
    }

    /// Expires the requests past their deadline at `now` (each answers a timeout); the
    /// earliest deadline of the others.
    fn expire_requests(&self, now: Instant) -> Option<Instant> {
        let requests = self.requests.lock().ok()?;
        let mut next: Option<Instant> = None;
        for r in requests.iter() {
            if r.meter.expired.load(Ordering::Acquire) {
                continue;
            }
            if r.deadline <= now {
                r.meter.expired.store(true, Ordering::Release);
                r.meter.expiry.wake();
            } else {
                next = Some(next.map_or(r.deadline, |n| n.min(r.deadline)));
            }
        }
        next
    }

    fn take_pending(&self) -> Usage {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

/// The log of a shared instance: each line goes to the oldest request in flight.
struct RoutedLog(Arc<Serving>);

impl LogSink for RoutedLog {
    fn line(&self, stream: LogStream, level: Level, message: String) {
        let oldest = self
            .0
            .requests
            .lock()
            .ok()
            .and_then(|r| r.first().map(|r| r.meter.log.clone()));
        let sink = oldest.or_else(|| self.0.last_log.lock().ok().and_then(|l| l.clone()));
        if let Some(sink) = sink {
            sink.line(stream, level, message);
        }
    }
}

impl Meter {
    /// Ends the request's account once: its usage goes to the node, its permit is
    /// freed, and its instance stops charging it.
    fn settle(&self, failed: bool) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        let serving = self.serving.lock().ok().and_then(|s| s.clone());
        let mut used = Usage {
            cpu: EPOCH_TICK * self.ticks.load(Ordering::Relaxed) as u32,
            wall: self.started.elapsed(),
            failed,
            ..Usage::default()
        };
        if let Some((serving, task)) = serving.and_then(|(s, t)| Some((s.upgrade()?, t))) {
            serving.remove(task);
            let pending = serving.take_pending();
            used.kv = pending.kv;
            used.outbound_allowed = pending.outbound_allowed;
            used.outbound_denied = pending.outbound_denied;
            used.peak_memory_bytes = serving.peak_memory.load(Ordering::Relaxed) as u64;
        }
        self.usage.finished(used);
        if let Ok(mut held) = self.held.lock() {
            held.take();
        }
    }
}

impl Workers {
    pub(crate) fn new(
        runtime: &crate::Runtime,
        service: ServicePre<GuestState>,
        scaling: &Scaling,
        grants: Arc<Grants>,
        limits: Limits,
        queue_timeout: Duration,
        (room, thread): (Arc<Room>, usize),
    ) -> Self {
        Self {
            handler: ProxyHandler::new(VersionWorkers {
                engine: runtime.engine.clone(),
                service,
                capabilities: runtime.capabilities.clone(),
                grants,
                limits,
                max_requests: scaling.reuse_max_requests as usize,
                max_age: Duration::from_secs(scaling.reuse_max_seconds),
                max_concurrent: scaling.max_concurrent_per_instance.max(1) as usize,
                slots: runtime.slots.clone(),
                max_instances: runtime.max_instances,
                queue_timeout,
                stats: runtime.stats.clone(),
                budget: runtime.idle_budget.clone(),
                closed: Arc::new(AtomicBool::new(false)),
                room,
                thread,
            }),
        }
    }

    /// Runs one request on a kept instance (or a new one). Returns once the guest has
    /// answered; the body streams after.
    pub(crate) async fn invoke(
        &self,
        request: http::Request<Bytes>,
        log: Arc<dyn LogSink>,
        usage: Arc<dyn UsageSink>,
        held: impl Send + 'static,
        pool: &crate::InstancePool,
    ) -> Result<GuestResponse, InvokeError> {
        use http_body_util::BodyExt;
        let (outcome, ended) = tokio::sync::oneshot::channel();
        let meter = Arc::new(Meter {
            started: Instant::now(),
            ticks: AtomicU64::new(0),
            over_cpu: AtomicBool::new(false),
            log: log.clone(),
            usage,
            held: Mutex::new(Some(Box::new(held))),
            outcome: Mutex::new(Some(outcome)),
            serving: Mutex::new(None),
            settled: AtomicBool::new(false),
            expired: AtomicBool::new(false),
            expiry: AtomicWaker::new(),
        });
        let request = request.map(|body| {
            http_body_util::Full::new(body)
                .map_err(|never| -> wasmtime_wasi_http::Error { match never {} })
                .boxed_unsync()
        });
        let mut answered = self.handler.handle(meter.clone(), request).await;
        if let Err(e) = answered {
            // Boxed: only a request that waited for a slot takes this path.
            answered = Box::pin(self.requeue(e, meter.started, pool)).await;
        }
        let error = match answered {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let body = Metered {
                    body,
                    meter: meter.clone(),
                };
                return Ok(http::Response::from_parts(parts, body.boxed_unsync()));
            }
            // Boxed: the rare path keeps the request's future small.
            Err(e) => Box::pin(self.failure(e, ended)).await,
        };
        log.line(LogStream::Host, Level::Error, error.to_string());
        meter.settle(true);
        Err(error)
    }

    /// A request that waited for a slot while an instance of its version had room again
    /// goes back to that instance's workers (in `pool`, by thread), to be taken by it. Each time is an instance
    /// saying it has room, when its driver offers it requests, not a spin; and it goes
    /// back only while it has waited less than twice the queue time (each wait for a
    /// slot is at most the queue time, and one may start just before the first ends).
    async fn requeue(
        &self,
        mut e: wasmtime::Error,
        started: Instant,
        pool: &crate::InstancePool,
    ) -> Result<wasmtime_wasi_http::handler::Response, wasmtime::Error> {
        let queue_until = started + 2 * self.handler.state().queue_timeout;
        loop {
            let failed = match e.downcast::<InstantiationError<Arc<Meter>>>() {
                Ok(failed)
                    if failed.error.downcast_ref::<HasRoom>().is_some()
                        && Instant::now() < queue_until =>
                {
                    failed
                }
                Ok(failed) => return Err(failed.into()),
                Err(e) => return Err(e),
            };
            let request = match failed.request.into_inner() {
                Ok(request) => request,
                Err(poisoned) => poisoned.into_inner(),
            };
            let ready = self.handler.state().room.ready.load(Ordering::SeqCst);
            let workers = pool.workers_on(ready);
            let handler = workers.as_ref().map_or(&self.handler, |w| &w.handler);
            e = match handler.handle(failed.request_data, request).await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
        }
    }

    /// What a failed request tells its caller.
    async fn failure(
        &self,
        e: wasmtime::Error,
        ended: tokio::sync::oneshot::Receiver<InvokeError>,
    ) -> InvokeError {
        let limits = &self.handler.state().limits;
        if e.downcast_ref::<ExpirationError>().is_some() {
            return InvokeError::Timeout(limits.timeout_ms);
        }
        if let Some(failed) = e.downcast_ref::<InstantiationError<Arc<Meter>>>() {
            if failed.error.downcast_ref::<NoSlot>().is_some()
                || failed.error.downcast_ref::<HasRoom>().is_some()
            {
                return InvokeError::NoInstanceSlot(self.handler.state().max_instances);
            }
            return InvokeError::Instantiate(format!("{:#}", failed.error));
        }
        if let Some(code) = e.downcast_ref::<ErrorCode3>() {
            return InvokeError::GuestError(format!("{code:?}"));
        }
        // The instance ended (a trap, a limit) while serving the request: why is sent
        // once the instance is dropped, just after.
        match tokio::time::timeout(Duration::from_secs(5), ended).await {
            Ok(Ok(why)) => why,
            _ => InvokeError::Trap(format!("{e:#}")),
        }
    }
}

/// No instance slot came free within the function's queue time.
#[derive(Debug, thiserror::Error)]
#[error("no instance slot came free in time")]
struct NoSlot;

/// An instance of the version has room for the request that waited for a slot: it goes
/// back to the handler's queue (see [`Room`]).
#[derive(Debug, thiserror::Error)]
#[error("an instance of the version has room again")]
struct HasRoom;

impl HandlerState for VersionWorkers {
    type StoreData = GuestState;
    type WorkerExpiration = Expiry;
    type WorkerState = InstanceWorker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<GuestState, Expiry, InstanceWorker>> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            // Boxed: only a request that waits carries the wait's state.
            Err(_) => Box::pin(self.wait_for_slot()).await?,
        };
        let serving = Arc::new(Serving {
            requests: Mutex::new(Vec::new()),
            last_log: Mutex::new(None),
            pending: Mutex::new(Usage::default()),
            peak_memory: Arc::new(AtomicUsize::new(0)),
            max_ticks: self.limits.cpu_ms.div_ceil(EPOCH_TICK.as_millis() as u64),
            driver: AtomicWaker::new(),
            just_started: AtomicBool::new(false),
        });
        self.room.add(&serving);
        let log: Arc<dyn LogSink> = Arc::new(RoutedLog(serving.clone()));
        let mut store = build_store(
            &self.engine,
            &self.capabilities,
            &self.grants,
            &log,
            &self.limits,
        );
        store.data_mut().serving = Some(serving.clone());
        store.data_mut().memory.shared_peak = Some(serving.peak_memory.clone());
        store.set_epoch_deadline(1);
        self.stats.instantiations.fetch_add(1, Ordering::Relaxed);
        let service = self.service.instantiate_async(&mut store).await?;
        let born = Instant::now();
        let aged = Arc::new(AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: GuestState::http,
            expiration: Expiry {
                closed: self.closed.clone(),
                budget: self.budget.clone(),
                holds_idle: false,
                born,
                max_age: self.max_age,
                // Each request expires at its own timeout first; this is the
                // backstop for a guest that keeps the event loop from running.
                request_timeout: self.limits.timeout() + Duration::from_millis(500),
                period: IDLE_CHECK.min(self.limits.timeout()),
                aged: aged.clone(),
                serving: serving.clone(),
                // Fires at once, and then sets itself.
                sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
                driver_known: false,
            },
            state: InstanceWorker {
                closed: self.closed.clone(),
                serving,
                log,
                aged,
                max_requests: self.max_requests,
                max_concurrent: self.max_concurrent,
                limits: self.limits,
                stats: self.stats.clone(),
                served: AtomicUsize::new(0),
                slot: Mutex::new(Some(slot)),
                room: self.room.clone(),
                thread: self.thread,
            },
        })
    }
}

impl VersionWorkers {
    /// A slot of the pooling allocator within the queue time, unless an instance of the
    /// version has room for the request first.
    async fn wait_for_slot(&self) -> wasmtime::Result<tokio::sync::OwnedSemaphorePermit> {
        let room = self.room.notify.notified();
        let mut room = std::pin::pin!(room);
        // Registered before the count says anyone waits, so no notice is missed.
        room.as_mut().enable();
        self.room.waiting.fetch_add(1, Ordering::SeqCst);
        self.room.wake_instances();
        let waiting = tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned());
        let got = tokio::select! {
            slot = waiting => match slot {
                Ok(Ok(slot)) => Ok(slot),
                _ => Err(wasmtime::Error::new(NoSlot)),
            },
            () = room => Err(wasmtime::Error::new(HasRoom)),
        };
        self.room.waiting.fetch_sub(1, Ordering::SeqCst);
        got
    }
}

/// One instance's policy: how many requests it takes, and what its end means for them.
struct InstanceWorker {
    closed: Arc<AtomicBool>,
    serving: Arc<Serving>,
    log: Arc<dyn LogSink>,
    /// Set by its [`Expiry`] once it is `max_age` old: it takes no more requests.
    aged: Arc<AtomicBool>,
    max_requests: usize,
    max_concurrent: usize,
    limits: Limits,
    stats: Arc<RuntimeStats>,
    /// Requests it has taken.
    served: AtomicUsize,
    /// Its slot in the pooling allocator, freed after the store is dropped.
    slot: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    room: Arc<Room>,
    thread: usize,
}

impl WorkerState for InstanceWorker {
    type StoreData = GuestState;
    type RequestData = Arc<Meter>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_requests
            || self.aged.load(Ordering::Relaxed)
            || self.closed.load(Ordering::Relaxed)
        {
            ShouldAccept::Never
        } else if concurrent < self.max_concurrent {
            // Only when the driver will offer the instance requests now: a notice
            // before then would send the waiting ones back to start instances again.
            if self.room.waiting.load(Ordering::SeqCst) > 0
                && (concurrent == 0 || !self.serving.just_started.load(Ordering::Relaxed))
            {
                self.room.has_room(self.thread);
            }
            ShouldAccept::Yes
        } else {
            ShouldAccept::No
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, GuestState>,
        meter: Arc<Meter>,
        task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        self.serving.just_started.store(true, Ordering::Relaxed);
        let state = store.data_mut();
        // What the capabilities counted so far is charged to the next request to end;
        // their counts and the instance's CPU budget (for work outside any request)
        // start over.
        let mut counted = Usage::default();
        state.report(&mut counted);
        if let Ok(mut pending) = self.serving.pending.lock() {
            pending.kv.ok += counted.kv.ok;
            pending.kv.denied += counted.kv.denied;
            pending.kv.errors += counted.kv.errors;
            pending.outbound_allowed += counted.outbound_allowed;
            pending.outbound_denied += counted.outbound_denied;
        }
        state.restart(&self.log);
        if self.served.fetch_add(1, Ordering::Relaxed) > 0 {
            self.stats.reuses.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut serving) = meter.serving.lock() {
            *serving = Some((Arc::downgrade(&self.serving), task));
        }
        if let Ok(mut last) = self.serving.last_log.lock() {
            *last = Some(meter.log.clone());
        }
        let deadline = Instant::now() + self.limits.timeout();
        if let Ok(mut requests) = self.serving.requests.lock() {
            requests.push(Running {
                task,
                meter: meter.clone(),
                deadline,
            });
        }
        // The instance's `Expiry` expires it: no timer per request.
        Box::pin(RequestDeadline(meter))
    }

    fn drop(&self, store: Store<GuestState>, result: wasmtime::Result<()>) {
        let state = store.data();
        let running = self
            .serving
            .requests
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        if let Err(e) = &result {
            let memory = state.memory.hit;
            for r in &running {
                let why = if r.meter.over_cpu.load(Ordering::Relaxed) {
                    InvokeError::CpuLimit(self.limits.cpu_ms)
                } else if memory {
                    InvokeError::MemoryLimit(self.limits.memory_mb)
                } else if running
                    .iter()
                    .any(|o| o.meter.over_cpu.load(Ordering::Relaxed))
                {
                    InvokeError::Trap(
                        "another request to the same instance ran past its CPU time limit, \
                         which ends the instance and every request it was serving"
                            .into(),
                    )
                } else if e.to_string().contains("guest timed out") {
                    InvokeError::Timeout(self.limits.timeout_ms)
                } else {
                    InvokeError::Trap(e.root_cause().to_string())
                };
                if let Some(tell) = r.meter.outcome.lock().ok().and_then(|mut o| o.take()) {
                    let _ = tell.send(why);
                }
            }
        }
        // Requests whose bodies are still streaming keep their own accounts; the
        // instance no longer charges them.
        drop(running);
        drop(store);
        if let Ok(mut slot) = self.slot.lock() {
            slot.take();
        }
    }
}

/// When an instance is dropped: after `max_age`, when idle and the node has enough
/// idle instances, or when a request outlives its timeout while the guest keeps the
/// event loop from running. It also expires each request at its own timeout.
///
/// Its one timer moves only when it fires, at most `period` ahead: every deadline set
/// after it is armed (a request's, at least its timeout away) is then no earlier than
/// its firing, so a request arms no timer of its own and a change of status moves
/// nothing.
struct Expiry {
    closed: Arc<AtomicBool>,
    budget: Arc<IdleBudget>,
    holds_idle: bool,
    born: Instant,
    max_age: Duration,
    request_timeout: Duration,
    period: Duration,
    aged: Arc<AtomicBool>,
    serving: Arc<Serving>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    driver_known: bool,
}

impl WorkerExpiration for Expiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        // The driver's task, whose waker does not change: registered once.
        if !self.driver_known {
            self.serving.driver.register(cx.waker());
            self.driver_known = true;
        }
        // The event loop waits: the driver offers the instance requests again.
        self.serving.just_started.store(false, Ordering::Relaxed);
        match status {
            WorkerStatus::Idle => {
                if self.closed.load(Ordering::Relaxed) {
                    return Poll::Ready(());
                }
                if !self.holds_idle {
                    if !self.budget.try_take() {
                        return Poll::Ready(());
                    }
                    self.holds_idle = true;
                }
            }
            WorkerStatus::Requests | WorkerStatus::PostReturn => {
                if self.holds_idle {
                    self.budget.give_back(1);
                    self.holds_idle = false;
                }
            }
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let retire = self.born + self.max_age;
            if now >= retire {
                self.aged.store(true, Ordering::Relaxed);
            }
            let (deadline, next_request) = match status {
                // Woken every period to see whether the version let go of it.
                WorkerStatus::Idle => (retire, None),
                WorkerStatus::Requests | WorkerStatus::PostReturn => (
                    start + self.request_timeout,
                    self.serving.expire_requests(now),
                ),
            };
            if now >= deadline {
                return Poll::Ready(());
            }
            let mut wake = deadline.min(now + self.period);
            if now < retire {
                wake = wake.min(retire);
            }
            if let Some(next) = next_request {
                wake = wake.min(next);
            }
            self.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(wake));
        }
    }
}

/// A request's expiry, as `on_request_start` hands it to wasmtime: ready once the
/// instance's [`Expiry`] finds the request past its deadline.
struct RequestDeadline(Arc<Meter>);

impl Future for RequestDeadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.expired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.expiry.register(cx.waker());
        if self.0.expired.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Expiry {
    fn drop(&mut self) {
        if self.holds_idle {
            self.budget.give_back(1);
        }
    }
}

/// A shared instance's response body: the request's account is settled when the body
/// ends, fails or is dropped.
struct Metered<B> {
    body: B,
    meter: Arc<Meter>,
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.meter.settle(false),
            Poll::Ready(Some(Err(_))) => self.meter.settle(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        self.meter.settle(false);
    }
}
