//! What one invocation used, as the runtime reports it to the node's metrics and
//! metering when the guest finishes. The engine measures time and memory; each
//! capability adds its own calls (`InstanceState::report`).

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
