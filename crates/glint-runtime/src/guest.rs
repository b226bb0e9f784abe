//! The sandbox of one instance: what a guest's `Store` holds and what it may touch.
//!
//! Policy lives here: no preopened directories, no sockets, no name lookup, stdin empty,
//! a memory cap and a CPU budget. What else the guest may use comes from the node's
//! capabilities, each keeping an [`InstanceState`] here.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use crate::log::LogSink;
use crate::manifest::Limits;
use crate::usage::Usage;

/// How often the epoch ticks. A running guest yields to other requests at every tick,
/// and its CPU budget is counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Caps linear memory; remembers whether the cap was hit so a trap can be explained.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    pub(crate) hit: bool,
    pub(crate) peak_bytes: usize,
    /// Where a shared instance (WASI 0.3 reuse) publishes its peak, for the requests it
    /// serves to read at their end.
    pub(crate) shared_peak: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        if let Some(shared) = &self.shared_peak {
            shared.fetch_max(desired, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A capability's state in one instance. A reused instance serves one invocation after
/// another: `restart` readies it for the next, `finish` ends the last.
pub trait InstanceState: std::any::Any + Send {
    /// The next invocation starts on this instance, with its own log.
    fn restart(&mut self, _log: &Arc<dyn LogSink>) {}
    /// The invocation is over and the instance is kept for another.
    fn finish(&mut self) {}
    /// Adds what this invocation did with the capability to its usage record.
    fn report(&self, _usage: &mut Usage) {}
}

/// The data of one instance's `Store`.
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    /// The hooks of `wasi:http/types`; sending is the outbound capability's.
    no_sending: NoSending,
    /// One state per capability, in the order of the node's list.
    capabilities: Vec<Box<dyn InstanceState>>,
    pub(crate) memory: MemoryCap,
    pub(crate) cpu_ticks: u64,
    pub(crate) max_cpu_ticks: u64,
    /// The requests a shared instance (WASI 0.3 reuse) is serving, to charge its CPU
    /// time to; `None` for an instance that serves one request at a time.
    pub(crate) serving: Option<Arc<dyn TaskCharge>>,
}

/// Where a shared instance charges a tick of CPU: to the request whose guest task ran.
pub(crate) trait TaskCharge: Send + Sync {
    /// Counts a tick for `task`'s request: `Some(true)` when it is past its CPU limit,
    /// `None` when `task` is no request's.
    fn tick(&self, task: wasmtime::component::GuestTaskId) -> Option<bool>;
}

/// A capability's state and the instance's shared parts, borrowed together.
pub struct InstanceParts<'a, S> {
    pub state: &'a mut S,
    pub table: &'a mut ResourceTable,
    pub http: &'a mut WasiHttpCtx,
}

/// The engine's sandbox policy for WASI: nothing of the host is reachable, and the
/// guest cannot open sockets or look names up. Capabilities add to it.
pub(crate) fn sandboxed_wasi() -> WasiCtxBuilder {
    let mut wasi = WasiCtx::builder();
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    wasi
}

impl GuestState {
    pub(crate) fn new(
        wasi: WasiCtx,
        capabilities: Vec<Box<dyn InstanceState>>,
        limits: &Limits,
    ) -> Self {
        let tick_ms = EPOCH_TICK.as_millis() as u64;
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            no_sending: NoSending,
            capabilities,
            memory: MemoryCap {
                max_bytes: limits.memory_bytes(),
                hit: false,
                peak_bytes: 0,
                shared_peak: None,
            },
            cpu_ticks: 0,
            max_cpu_ticks: limits.cpu_ms.div_ceil(tick_ms),
            serving: None,
        }
    }

    /// The state of capability `S` in this instance, with the resource table and the HTTP
    /// context its host calls need. For the getters a capability links.
    ///
    /// # Panics
    /// If no capability of the node made an `S`: a capability asks only for its own state,
    /// which the engine builds for every instance, so this is a bug in that capability.
    pub fn capability<S: InstanceState>(&mut self) -> InstanceParts<'_, S> {
        let state = self
            .capabilities
            .iter_mut()
            .find_map(|s| (s.as_mut() as &mut dyn std::any::Any).downcast_mut::<S>())
            .unwrap_or_else(|| {
                panic!(
                    "no instance state {}: its capability is not in the node's list",
                    std::any::type_name::<S>()
                )
            });
        InstanceParts {
            state,
            table: &mut self.table,
            http: &mut self.http,
        }
    }

    /// Readies a reused instance for the next invocation of the same version: its log,
    /// its tallies and its CPU budget start over. Everything else (env, grants, the
    /// guest's own memory) stays, which is the point of reuse.
    pub(crate) fn restart(&mut self, log: &Arc<dyn LogSink>) {
        for state in &mut self.capabilities {
            state.restart(log);
        }
        self.memory.hit = false;
        self.cpu_ticks = 0;
    }

    /// Ends an invocation whose instance is kept (flushes partial output lines).
    pub(crate) fn finish(&mut self) {
        for state in &mut self.capabilities {
            state.finish();
        }
    }

    /// What the capabilities counted in this invocation.
    pub(crate) fn report(&self, usage: &mut Usage) {
        for state in &self.capabilities {
            state.report(usage);
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.no_sending,
        }
    }
}

/// The hooks of `wasi:http/types` and the incoming request: the defaults, except that
/// nothing is sent from here. Outgoing requests go through the outbound capability,
/// which links `wasi:http/outgoing-handler` with hooks of its own.
struct NoSending;

type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

impl WasiHttpHooks for NoSending {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, HttpError>> + Send> {
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}
