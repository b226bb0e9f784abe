//! Running one request: a fresh `Store`, the guest's `incoming-handler`, and the limits.
//!
//! The guest runs in its own task so its response body can stream after the headers are
//! sent. The CPU budget is counted in epoch ticks (the guest yields to other requests at
//! each tick); the wall-clock timeout bounds the whole task; the memory cap is a
//! `ResourceLimiter`. Whatever ends an invocation early is logged to its own log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glint_store::Level;
use http_body_util::BodyExt;
use wasmtime::{AsContextMut, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{Prepared, Proxy};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as ErrorCode3;

use std::sync::Arc;

use crate::Runtime;
use crate::capabilities::Grants;
use crate::engine::{Compiled, HandlerPre};
use crate::guest::GuestState;
use crate::log::{LogSink, LogStream};
pub use crate::outcome::{GuestBody, GuestResponse, InvokeError};
use crate::reuse::{InstancePool, Warm};
use crate::sandbox::{CpuLimitExceeded, build_store};
use crate::usage::{Usage, UsageSink};

/// What one invocation may use, as the node hands it to the runtime. The version's parts
/// are borrowed: a request clones only what outlives it.
#[derive(Clone)]
pub struct Invocation<'a> {
    pub limits: crate::Limits,
    pub log: Arc<dyn LogSink>,
    pub usage: Arc<dyn UsageSink>,
    /// The version's grants, by capability: what its instances may use.
    pub grants: &'a Arc<Grants>,
    /// The version's idle instances, when its manifest sets `[scaling] reuse = true`;
    /// `None` runs every request in a fresh instance.
    pub pool: Option<&'a Arc<InstancePool>>,
    /// How long the request may wait for a free instance slot on the node.
    pub queue_timeout: Duration,
}

impl Runtime {
    /// A store for a new instance, with the invocation's limits wired in.
    pub(crate) fn new_store(&self, inv: &Invocation<'_>) -> Store<GuestState> {
        build_store(
            &self.engine,
            &self.capabilities,
            inv.grants,
            &inv.log,
            &inv.limits,
        )
    }

    /// Runs `compiled` on one request. Returns once the guest has set its response (or
    /// failed); the body may still be streaming from the guest after that.
    /// The request body comes whole: the node reads it, up to the function's limit, first.
    /// `held` (the function's concurrency permit) lives as long as the guest's task, not
    /// the caller's future: a caller that goes away does not free it while the guest runs.
    pub async fn invoke(
        &self,
        compiled: &Compiled,
        request: http::Request<Bytes>,
        inv: Invocation<'_>,
        held: impl Send + 'static,
    ) -> Result<GuestResponse, InvokeError> {
        if let HandlerPre::Wasi03(service) = &compiled.pre {
            if let Some(pool) = inv.pool {
                let workers = pool.workers(|scaling, room, thread| {
                    let grants = inv.grants.clone();
                    let service = service.clone();
                    crate::workers::Workers::new(
                        self,
                        service,
                        scaling,
                        grants,
                        inv.limits,
                        inv.queue_timeout,
                        (room, thread),
                    )
                });
                return workers
                    .invoke(request, inv.log, inv.usage, held, pool)
                    .await;
            }
            let service = service.clone();
            return self.invoke_wasi03(service, request, inv, held).await;
        }
        let HandlerPre::Wasi02(pre) = &compiled.pre else {
            unreachable!("WASI 0.3 returned above")
        };
        self.invoke_wasi02(pre, request, inv, held).await
    }

    /// Runs a WASI 0.2 component (`wasi:http/incoming-handler@0.2.x`) on one request: in
    /// an idle instance of the version when it keeps them, else a fresh one.
    async fn invoke_wasi02(
        &self,
        pre: &ProxyPre<GuestState>,
        request: http::Request<Bytes>,
        inv: Invocation<'_>,
        held: impl Send + 'static,
    ) -> Result<GuestResponse, InvokeError> {
        let request = request.map(|body| {
            http_body_util::Full::new(body)
                .map_err(|never| -> wasmtime_wasi_http::Error { match never {} })
        });
        let limits = inv.limits;
        // In reuse mode, an idle instance of this version if there is one.
        let warm = inv.pool.as_ref().and_then(|pool| pool.take());
        let (mut store, proxy, born, served, slot) = match warm {
            Some(mut w) => {
                w.store.data_mut().restart(&inv.log);
                self.stats.reuses.fetch_add(1, Ordering::Relaxed);
                (w.store, Some(w.proxy), w.born, w.served, w.slot)
            }
            None => {
                // A slot of the pooling allocator for the new instance: when all are
                // busy the request waits, within the function's queue time.
                let waiting = self.slots.clone().acquire_owned();
                let slot = match tokio::time::timeout(inv.queue_timeout, waiting).await {
                    Ok(Ok(slot)) => slot,
                    _ => return Err(InvokeError::NoInstanceSlot(self.max_instances)),
                };
                (self.new_store(&inv), None, Instant::now(), 0, slot)
            }
        };
        store.set_epoch_deadline(1);

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let failed = |e: wasmtime::Error| InvokeError::Instantiate(format!("{e:#}"));
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(failed)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(failed)?;

        let pre = pre.clone();
        let log = inv.log.clone();
        let usage = inv.usage.clone();
        let pool = inv.pool.cloned();
        let stats = self.stats.clone();
        let task = tokio::spawn(async move {
            let _held = held;
            let started = Instant::now();
            let busy_nanos = AtomicU64::new(0);
            let run = async {
                let proxy = match proxy {
                    Some(p) => p,
                    None => {
                        stats.instantiations.fetch_add(1, Ordering::Relaxed);
                        pre.instantiate_async(&mut store)
                            .await
                            .map_err(|e| (true, e))?
                    }
                };
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
                    .map_err(|e| (false, e))?;
                Ok(proxy)
            };
            // Each poll of the guest is time it ran: the sum is its CPU time, without the
            // waits on timers, outbound calls or the client.
            let mut run = Box::pin(run);
            let busy = &busy_nanos;
            let timed = std::future::poll_fn(move |cx| {
                let t = Instant::now();
                let polled = run.as_mut().poll(cx);
                busy.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                polled
            });
            let outcome = match tokio::time::timeout(limits.timeout(), timed).await {
                Err(_) => Err(InvokeError::Timeout(limits.timeout_ms)),
                Ok(Ok(proxy)) => Ok(proxy),
                Ok(Err((instantiating, e))) => {
                    let (error, detail) = classify(&store, &limits, instantiating, e);
                    if let Some(detail) = detail {
                        log.line(LogStream::Host, Level::Debug, detail);
                    }
                    Err(error)
                }
            };
            if let Err(e) = &outcome {
                log.line(LogStream::Host, Level::Error, e.to_string());
            }
            let state = store.data();
            let mut used = Usage {
                cpu: Duration::from_nanos(busy_nanos.load(Ordering::Relaxed)),
                wall: started.elapsed(),
                peak_memory_bytes: state.memory.peak_bytes as u64,
                failed: outcome.is_err(),
                ..Usage::default()
            };
            state.report(&mut used);
            usage.finished(used);
            match (outcome, pool) {
                // Only an instance that finished cleanly is kept: after a trap, a limit or
                // a timeout its state may be half-written.
                (Ok(proxy), Some(pool)) => {
                    store.data_mut().finish();
                    pool.put(Warm {
                        store,
                        proxy,
                        born,
                        served: served + 1,
                        slot,
                    });
                    Ok(())
                }
                (outcome, _) => {
                    // The instance goes back to the pooling allocator before its slot is
                    // offered to the next request.
                    drop(store);
                    drop(slot);
                    outcome.map(drop)
                }
            }
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(InvokeError::GuestError(format!("{code:?}"))),
            Err(_) => match task.await {
                Ok(Ok(())) => {
                    inv.log.line(
                        LogStream::Host,
                        Level::Error,
                        InvokeError::NoResponse.to_string(),
                    );
                    Err(InvokeError::NoResponse)
                }
                Ok(Err(e)) => Err(e),
                Err(join) => Err(InvokeError::Trap(format!("the guest task failed: {join}"))),
            },
        }
    }
}

impl Runtime {
    /// Runs a WASI 0.3 component (`wasi:http/handler@0.3.x`) on one request, in a fresh
    /// instance: the same slot, limits, log, usage and timeout as WASI 0.2. The store's
    /// event loop runs until the guest has no task left, so a body it streams after
    /// returning its response is carried to the end.
    async fn invoke_wasi03(
        &self,
        service: ServicePre<GuestState>,
        request: http::Request<Bytes>,
        inv: Invocation<'_>,
        held: impl Send + 'static,
    ) -> Result<GuestResponse, InvokeError> {
        let limits = inv.limits;
        let waiting = self.slots.clone().acquire_owned();
        let slot = match tokio::time::timeout(inv.queue_timeout, waiting).await {
            Ok(Ok(slot)) => slot,
            _ => return Err(InvokeError::NoInstanceSlot(self.max_instances)),
        };
        let mut store = self.new_store(&inv);
        store.set_epoch_deadline(1);
        let request = request.map(|body| {
            http_body_util::Full::new(body)
                .map_err(|never| -> wasmtime_wasi_http::Error { match never {} })
                .boxed_unsync()
        });
        let (sender, receiver) = futures::channel::oneshot::channel();
        let log = inv.log.clone();
        let usage = inv.usage.clone();
        let stats = self.stats.clone();
        let task = tokio::spawn(async move {
            let _held = held;
            let started = Instant::now();
            let busy_nanos = AtomicU64::new(0);
            let run = async {
                stats.instantiations.fetch_add(1, Ordering::Relaxed);
                let service = service
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| (true, e))?;
                let proxy = Proxy::P3(service);
                let prepared = Prepared::new(
                    store.as_context_mut(),
                    &proxy,
                    request,
                    GuestState::http,
                    sender,
                )
                .map_err(|e| (true, e))?;
                store
                    .run_concurrent(async |accessor| {
                        prepared.run(accessor, std::future::pending()).await?;
                        // The response is sent; its body may still be coming.
                        std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                        wasmtime::Result::Ok(())
                    })
                    .await
                    .and_then(|ran| ran)
                    .map_err(|e| (false, e))
            };
            let mut run = Box::pin(run);
            let busy = &busy_nanos;
            let timed = std::future::poll_fn(move |cx| {
                let t = Instant::now();
                let polled = run.as_mut().poll(cx);
                busy.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                polled
            });
            let outcome = match tokio::time::timeout(limits.timeout(), timed).await {
                Err(_) => Err(InvokeError::Timeout(limits.timeout_ms)),
                Ok(Ok(())) => Ok(()),
                Ok(Err((instantiating, e))) => {
                    let (error, detail) = classify(&store, &limits, instantiating, e);
                    if let Some(detail) = detail {
                        log.line(LogStream::Host, Level::Debug, detail);
                    }
                    Err(error)
                }
            };
            if let Err(e) = &outcome {
                log.line(LogStream::Host, Level::Error, e.to_string());
            }
            let state = store.data();
            let mut used = Usage {
                cpu: Duration::from_nanos(busy_nanos.load(Ordering::Relaxed)),
                wall: started.elapsed(),
                peak_memory_bytes: state.memory.peak_bytes as u64,
                failed: outcome.is_err(),
                ..Usage::default()
            };
            state.report(&mut used);
            usage.finished(used);
            // The instance goes back to the pooling allocator before its slot is offered
            // to the next request.
            drop(store);
            drop(slot);
            outcome
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            // The guest answered with an error code, or failed before it answered: the
            // task's outcome says which, and is logged there.
            Ok(Err(answered)) => match task.await {
                Ok(Err(e)) => Err(e),
                _ => match answered.downcast::<ErrorCode3>() {
                    Ok(code) => Err(InvokeError::GuestError(format!("{code:?}"))),
                    Err(e) => Err(InvokeError::Trap(format!("{e:#}"))),
                },
            },
            Err(_) => match task.await {
                Ok(Ok(())) => {
                    inv.log.line(
                        LogStream::Host,
                        Level::Error,
                        InvokeError::NoResponse.to_string(),
                    );
                    Err(InvokeError::NoResponse)
                }
                Ok(Err(e)) => Err(e),
                Err(join) => Err(InvokeError::Trap(format!("the guest task failed: {join}"))),
            },
        }
    }
}

/// Names what ended the invocation; the second part, if any, is the detail (a wasm
/// backtrace) that goes to the log but not into the response.
fn classify(
    store: &Store<GuestState>,
    limits: &crate::Limits,
    instantiating: bool,
    e: wasmtime::Error,
) -> (InvokeError, Option<String>) {
    if e.downcast_ref::<CpuLimitExceeded>().is_some() {
        return (InvokeError::CpuLimit(limits.cpu_ms), None);
    }
    if store.data().memory.hit {
        return (InvokeError::MemoryLimit(limits.memory_mb), None);
    }
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    if instantiating && trap.is_none() {
        return (InvokeError::Instantiate(format!("{e:#}")), None);
    }
    let reason = match trap {
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "wasm `unreachable` executed (a panic or abort in the guest; its stderr is in the log)"
                .to_string()
        }
        Some(t) => t.to_string(),
        None => e.root_cause().to_string(),
    };
    (InvokeError::Trap(reason), Some(format!("{e:?}")))
}
