//! The per-request sandbox: what a guest's `Store` holds and what it may touch.
//!
//! A fresh [`GuestState`] is built for every request. Policy lives here: no preopened
//! directories, no sockets, no name lookup, stdin empty, stdout/stderr into the log,
//! outbound HTTP only as `[outbound]` allows ([`crate::outbound`]), KV stores only as
//! `[kv]` allows ([`crate::kv`]), configuration ([`crate::config`]), and a memory cap.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::ConfigVars;
use crate::kv::{KvGrant, KvView};
use crate::logs::{GuestOutput, LogSink, LogStream};
use crate::outbound::{NameResolver, OutboundPolicy};

/// What one invocation used, reported when its guest finishes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Time the guest spent running: each poll of the guest's task, summed. Waits on
    /// timers, outbound HTTP and the client do not count.
    pub cpu: std::time::Duration,
    /// From the start of instantiation to the guest's return.
    pub wall: std::time::Duration,
    /// The largest linear memory the guest had.
    pub peak_memory_bytes: u64,
    pub outbound_allowed: u32,
    pub outbound_denied: u32,
    pub kv: KvCounts,
    /// The invocation ended in an error (trap, limit, no response).
    pub failed: bool,
}

/// KV calls of one invocation, by result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvCounts {
    pub ok: u32,
    pub denied: u32,
    pub errors: u32,
}

/// Where an invocation's [`Usage`] goes: the node's metrics and metering.
pub trait UsageSink: Send + Sync {
    fn finished(&self, usage: Usage);
}

/// What one invocation may use, as the node hands it to the runtime.
#[derive(Clone)]
pub struct Invocation {
    pub limits: crate::Limits,
    /// Environment variables the guest sees through `wasi:cli/environment`.
    pub env: Arc<[(String, String)]>,
    pub log: Arc<dyn LogSink>,
    pub usage: Arc<dyn UsageSink>,
    /// The version's `[outbound]` allow-list.
    pub outbound: Arc<crate::outbound::OutboundRules>,
    /// The KV stores the version may open; `None` when its manifest lists none.
    pub kv: Option<Arc<KvGrant>>,
    /// What `wasi:config/store` answers: the same pairs as `env`.
    pub config: Arc<ConfigVars>,
    /// The version's idle instances, when its manifest sets `[scaling] reuse = true`;
    /// `None` runs every request in a fresh instance.
    pub pool: Option<Arc<crate::reuse::InstancePool>>,
    /// How long the request may wait for a free instance slot on the node.
    pub queue_timeout: std::time::Duration,
}

/// Caps linear memory; remembers whether the cap was hit so a trap can be explained.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    pub(crate) hit: bool,
    pub(crate) peak_bytes: usize,
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

/// The data of one request's `Store`.
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundPolicy,
    table: ResourceTable,
    kv: Option<Arc<KvGrant>>,
    pub(crate) kv_counts: KvCounts,
    pub(crate) config: Arc<ConfigVars>,
    log: Arc<dyn LogSink>,
    /// The guest's stdout and stderr, kept to point them at the next invocation's log
    /// when the instance is reused.
    output: [GuestOutput; 2],
    pub(crate) memory: MemoryCap,
    pub(crate) cpu_ticks: u64,
    pub(crate) max_cpu_ticks: u64,
}

impl GuestState {
    pub(crate) fn new(inv: &Invocation, resolver: &NameResolver) -> Self {
        let output = [
            GuestOutput::new(LogStream::Stdout, inv.log.clone()),
            GuestOutput::new(LogStream::Stderr, inv.log.clone()),
        ];
        let mut wasi = WasiCtx::builder();
        wasi.stdout(output[0].clone())
            .stderr(output[1].clone())
            .envs(&inv.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let tick_ms = crate::engine::EPOCH_TICK.as_millis() as u64;
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy::new(inv.outbound.clone(), resolver.clone(), inv.log.clone()),
            table: ResourceTable::new(),
            kv: inv.kv.clone(),
            kv_counts: KvCounts::default(),
            config: inv.config.clone(),
            log: inv.log.clone(),
            output,
            memory: MemoryCap {
                max_bytes: inv.limits.memory_bytes(),
                hit: false,
                peak_bytes: 0,
            },
            cpu_ticks: 0,
            max_cpu_ticks: inv.limits.cpu_ms.div_ceil(tick_ms),
        }
    }
}

impl GuestState {
    /// Readies a reused instance's state for the next invocation of the same version:
    /// its log, its tallies and its CPU budget start over. Everything else (env, grants,
    /// the guest's own memory) stays, which is the point of reuse.
    pub(crate) fn restart(&mut self, inv: &Invocation) {
        for out in &self.output {
            out.restart(inv.log.clone());
        }
        self.hooks.restart(inv.log.clone());
        self.log = inv.log.clone();
        self.kv_counts = KvCounts::default();
        self.memory.hit = false;
        self.cpu_ticks = 0;
    }

    /// Flushes partial output lines at the end of an invocation whose instance is kept.
    pub(crate) fn finish_output(&self) {
        for out in &self.output {
            out.finish();
        }
    }

    pub(crate) fn kv_view(&mut self) -> KvView<'_> {
        KvView::new(
            self.kv.as_deref(),
            &mut self.table,
            &self.log,
            &mut self.kv_counts,
        )
    }

    /// Outbound requests made and denied so far.
    pub(crate) fn outbound_counts(&self) -> (u32, u32) {
        self.hooks.counts()
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
            hooks: &mut self.hooks,
        }
    }
}
