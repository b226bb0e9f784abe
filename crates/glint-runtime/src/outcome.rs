//! What an invocation ends in: the guest's response, or why there is none.

use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A guest's response; the body streams while the guest keeps running.
pub type GuestResponse = http::Response<GuestBody>;

/// A guest's response body.
pub type GuestBody = HyperOutgoingBody;

/// Why an invocation produced no response. Each ends only its own request.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function used more than its CPU time limit of {0} ms")]
    CpuLimit(u64),
    #[error("the function did not finish within its timeout of {0} ms")]
    Timeout(u64),
    #[error("the function exceeded its memory limit of {0} MiB")]
    MemoryLimit(u64),
    #[error("the function trapped: {0}")]
    Trap(String),
    #[error("the function returned without setting a response")]
    NoResponse,
    #[error("the function responded with an error: {0}")]
    GuestError(String),
    #[error("the node could not start the function: {0}")]
    Instantiate(String),
    #[error(
        "every instance slot of this node is busy (--max-instances {0}) and none came free in time; retry shortly"
    )]
    NoInstanceSlot(u32),
}
