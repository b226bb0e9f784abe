//! Glint's runtime: the wasmtime engine, the compile cache, and one request's run.
//!
//! - [`engine`]: the node's `Engine` and `Linker`, and turning an upload into a
//!   [`Compiled`] component (validated, compiled once, cached on disk by sha256).
//! - [`guest`]: the per-request sandbox, [`GuestState`], and the [`Invocation`] limits.
//! - [`invoke`]: [`Runtime::invoke`] runs the guest's `wasi:http/incoming-handler` under
//!   its CPU, wall-clock and memory limits.
//! - [`reuse`]: the opt-in pool of one version's instances kept between requests.
//! - [`logs`]: guest stdout/stderr become log lines with levels.
//! - [`manifest`]: `glint.toml`, parsed and validated into a [`FunctionConfig`].
//! - Host capabilities, one module each, all shaped alike (link once, check the manifest
//!   at deploy, build state per request): [`outbound`] HTTP, [`kv`] stores, [`config`].
//!
//! The runtime knows no storage and no HTTP routing; the node wires those in.

pub mod config;
pub mod engine;
pub mod guest;
pub mod invoke;
pub mod kv;
pub mod logs;
pub mod manifest;
pub mod outbound;
pub mod photoniq;
pub mod reuse;

pub use config::ConfigVars;
pub use engine::{
    Compiled, Compiler, ComponentError, Runtime, RuntimeConfig, RuntimeStats, check_header,
    check_reusable,
};
pub use guest::{GuestState, Invocation, KvCounts, Usage, UsageSink};
pub use invoke::{GuestResponse, InvokeError, into_boxed_body};
pub use kv::KvGrant;
pub use logs::{LogSink, LogStream};
pub use manifest::{FunctionConfig, Limits, Manifest, ManifestError, Scaling};
pub use outbound::OutboundRules;
pub use reuse::{IdleBudget, InstancePool};
