//! A new instance's `Store`: the sandbox's WASI, the capabilities' states from the
//! version's grants, the memory cap and the epoch callback that counts CPU time.

use std::sync::Arc;

use wasmtime::{Store, UpdateDeadline};

use crate::capabilities::{Capabilities, Grants, InstanceSetup};
use crate::guest::{GuestState, sandboxed_wasi};
use crate::log::LogSink;

/// Raised from the epoch callback when the CPU budget runs out.
#[derive(Debug, thiserror::Error)]
#[error("CPU time limit exceeded")]
pub(crate) struct CpuLimitExceeded;

/// A store for a new instance of a version, with its limits wired in and its
/// capabilities' state made from its grants.
pub(crate) fn build_store(
    engine: &wasmtime::Engine,
    capabilities: &Capabilities,
    grants: &Grants,
    log: &Arc<dyn LogSink>,
    limits: &crate::Limits,
) -> Store<GuestState> {
    let mut wasi = sandboxed_wasi();
    let mut setup = InstanceSetup {
        wasi: &mut wasi,
        log,
    };
    let capabilities = capabilities.instantiate(grants, &mut setup);
    let state = GuestState::new(wasi.build(), capabilities, limits);
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    store.epoch_deadline_callback(|mut ctx| {
        // A shared instance charges the tick to the request whose task is running.
        if let Some(serving) = ctx.data().serving.clone() {
            let root = ctx.async_call_stack().ok().and_then(|stack| stack.last());
            match root.and_then(|task| serving.tick(task)) {
                Some(true) => return Err(wasmtime::Error::new(CpuLimitExceeded)),
                Some(false) => return Ok(yield_to_others()),
                None => {}
            }
        }
        let state = ctx.data_mut();
        state.cpu_ticks += 1;
        if state.cpu_ticks > state.max_cpu_ticks {
            return Err(wasmtime::Error::new(CpuLimitExceeded));
        }
        Ok(yield_to_others())
    });
    store
}

/// A guest that ran a whole tick yields through tokio's `yield_now`, which runs it again
/// only after the runtime has polled for I/O. wasmtime's own yield wakes it at once, so
/// a thread busy with looping guests (each a tick at a time) would look at its sockets
/// only every 61 polls (tokio's event interval), 0.6 s, and its other connections would
/// wait that long for each read.
fn yield_to_others() -> UpdateDeadline {
    UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
}
