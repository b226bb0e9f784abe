//! Glint's runtime: the wasmtime engine, the compile cache, and one request's run.
//!
//! - [`engine`]: the node's `Engine` and `Linker`, and turning an upload into a
//!   [`Compiled`] component (validated, compiled once, cached on disk by sha256).
//! - [`guest`]: the sandbox of one instance, [`GuestState`]: WASI closed down, a memory
//!   cap, a CPU budget, and the capabilities' state.
//! - [`invoke`]: [`Runtime::invoke`] runs the guest's `wasi:http/incoming-handler` for an
//!   [`Invocation`] under its CPU, wall-clock and memory limits.
//! - [`reuse`]: the opt-in pool of one version's instances kept between requests;
//!   [`workers`]: the same for WASI 0.3, whose instances may serve several at once.
//! - [`capabilities`]: what guests may use besides computing, one module each behind the
//!   [`Capability`] trait: logs (stdout/stderr), config (env and `wasi:config`),
//!   outbound HTTP, KV stores. The engine knows none of them by name.
//! - [`manifest`]: `glint.toml`, parsed and validated into a [`FunctionConfig`]; the
//!   capabilities read their own sections of it.
//! - [`log`] and [`usage`]: where an invocation's log lines and its usage record go.
//!
//! The runtime knows no storage backend and no HTTP routing; the node wires those in.

pub mod budget;
pub mod capabilities;
pub mod engine;
pub mod guest;
pub mod invoke;
pub mod log;
pub mod manifest;
pub mod outcome;
pub mod photoniq;
pub mod reuse;
pub mod sandbox;
pub mod usage;
pub mod workers;

pub use budget::IdleBudget;
pub use capabilities::{Capabilities, Capability, Grants, NodeServices, VersionContext};
pub use engine::{
    Compiled, Compiler, ComponentError, HttpWorld, Runtime, RuntimeConfig, RuntimeStats,
    check_header, check_reusable,
};
pub use guest::GuestState;
pub use invoke::{GuestBody, GuestResponse, Invocation, InvokeError};
pub use log::{LogSink, LogStream};
pub use manifest::{FunctionConfig, HttpStyle, Limits, Manifest, ManifestError, Scaling};
pub use reuse::InstancePool;
pub use usage::{KvCounts, Usage, UsageSink};
