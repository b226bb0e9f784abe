//! Host capabilities: what a guest may use besides computing, one module each, all shaped
//! by the [`Capability`] trait. The engine holds a [`Capabilities`] list and knows none of
//! them by name.
//!
//! A capability's life follows a version's:
//! 1. [`Capability::link`] adds its WIT bindings to the node's `Linker`, once at start-up;
//! 2. [`Capability::check`] reads its section of glint.toml at deploy, and its errors name
//!    the key at fault (`kv.stores`);
//! 3. [`Capability::provision`] makes what a new version needs before it is stored (the KV
//!    stores its manifest lists);
//! 4. [`Capability::prepare`] builds the version's [`Grant`] (what it may use) at deploy
//!    and at every rebuild of its route;
//! 5. [`Capability::instantiate`] builds the state of one instance from that grant, kept
//!    in the guest's store as an [`InstanceState`] that the capability's host calls reach
//!    with [`GuestState::capability`].
//!
//! Adding a capability is a new module here and one line in [`Capabilities::standard`].

pub mod config;
pub mod kv;
pub mod logs;
pub mod outbound;
pub mod spin;

use std::any::Any;
use std::sync::Arc;

use glint_store::{FunctionName, KeyValue, StoreError, TenantId};
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use crate::guest::GuestState;
pub use crate::guest::InstanceState;
use crate::log::LogSink;
use crate::manifest::{FunctionConfig, Manifest, ManifestError};

/// What one version may use of one capability, built by [`Capability::prepare`]. Each
/// capability downcasts its own grant; no other code looks inside.
pub type Grant = Arc<dyn Any + Send + Sync>;

/// The version a capability checks, provisions or prepares for.
pub struct VersionContext<'a> {
    pub tenant: &'a TenantId,
    pub function: &'a FunctionName,
    /// The validated manifest; each capability reads its own section of it.
    pub config: &'a FunctionConfig,
    /// The environment the version runs with: the manifest's `[env]`, the vars set through
    /// the API on top, and the granted secrets.
    pub env: &'a [(String, String)],
}

/// What a capability may set up in a new instance besides its own state.
pub struct InstanceSetup<'a> {
    /// WASI of the instance, already closed down by the engine's sandbox policy.
    pub wasi: &'a mut WasiCtxBuilder,
    /// The log of the invocation the instance starts with.
    pub log: &'a Arc<dyn LogSink>,
}

/// One host capability. See the module documentation for the order of the calls.
#[async_trait::async_trait]
pub trait Capability: Send + Sync + 'static {
    /// A short name for logs and errors: `kv`, `outbound`.
    fn name(&self) -> &'static str;

    /// The top-level key of glint.toml it reads (`kv` for `[kv]`), if any.
    fn section(&self) -> Option<&'static str> {
        None
    }

    /// Adds its WIT bindings to the node's linker. Called once, when the node starts.
    fn link(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()>;

    /// Checks its section at deploy; an error names the key at fault.
    fn check(&self, _config: &FunctionConfig) -> Result<(), ManifestError> {
        Ok(())
    }

    /// Makes what a new version needs, once its checks passed and before it is stored.
    async fn provision(&self, _version: &VersionContext<'_>) -> Result<(), StoreError> {
        Ok(())
    }

    /// The version's grant, at deploy and at every rebuild of its route.
    fn prepare(&self, version: &VersionContext<'_>) -> Result<Grant, ManifestError>;

    /// The state of one new instance of the version `grant` was prepared for.
    fn instantiate(&self, grant: &Grant, setup: &mut InstanceSetup<'_>) -> Box<dyn InstanceState>;
}

/// What the standard capabilities need from the node.
pub struct NodeServices {
    /// The node's KV backend, for `wasi:keyvalue`.
    pub kv: Arc<dyn KeyValue>,
    /// DNS servers for guests' outbound requests; empty means the system's.
    pub dns_servers: Vec<std::net::SocketAddr>,
}

/// The capabilities a node offers its guests, in the order they are linked and built.
#[derive(Clone)]
pub struct Capabilities(Arc<[Arc<dyn Capability>]>);

/// One version's grants, one per capability of the list that prepared them.
pub struct Grants(Vec<Grant>);

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|c| c.name()))
            .finish()
    }
}

impl Capabilities {
    /// Every capability Glint offers.
    pub fn standard(node: NodeServices) -> anyhow::Result<Self> {
        Ok(Self::new(vec![
            Arc::new(logs::Logs),
            Arc::new(config::Config),
            Arc::new(outbound::Outbound::new(&node.dns_servers)?),
            Arc::new(kv::Kv::new(node.kv)),
            Arc::new(spin::Spin),
        ]))
    }

    pub fn new(list: Vec<Arc<dyn Capability>>) -> Self {
        Self(list.into())
    }

    pub(crate) fn link(&self, linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
        for capability in self.0.iter() {
            capability.link(linker).map_err(|e| {
                anyhow::anyhow!("cannot link the {} capability: {e}", capability.name())
            })?;
        }
        Ok(())
    }

    /// Checks the manifest's capability sections at deploy. A section that no capability
    /// reads is a key glint.toml does not have.
    pub fn check(&self, config: &FunctionConfig) -> Result<(), ManifestError> {
        for key in config.sections.keys() {
            if !self.0.iter().any(|c| c.section() == Some(key.as_str())) {
                let mut known: Vec<&str> = Manifest::KEYS.to_vec();
                known.extend(self.0.iter().filter_map(|c| c.section()));
                return Err(ManifestError(format!(
                    "unknown key `{key}`; glint.toml has these: {}",
                    known.join(", ")
                )));
            }
        }
        self.0.iter().try_for_each(|c| c.check(config))
    }

    /// Provisions a new version with every capability, in order.
    pub async fn provision(&self, version: &VersionContext<'_>) -> Result<(), StoreError> {
        for capability in self.0.iter() {
            capability.provision(version).await?;
        }
        Ok(())
    }

    /// The grants of a version, at deploy and at every rebuild.
    pub fn prepare(&self, version: &VersionContext<'_>) -> Result<Grants, ManifestError> {
        let grants = self.0.iter().map(|c| c.prepare(version));
        Ok(Grants(grants.collect::<Result<_, _>>()?))
    }

    /// The states of a new instance, one per capability.
    pub(crate) fn instantiate(
        &self,
        grants: &Grants,
        setup: &mut InstanceSetup<'_>,
    ) -> Vec<Box<dyn InstanceState>> {
        self.0
            .iter()
            .zip(&grants.0)
            .map(|(capability, grant)| capability.instantiate(grant, setup))
            .collect()
    }
}

#[cfg(test)]
mod tests;
