//! Configuration: the function's env vars and granted secrets, which the guest reads as
//! environment variables (`wasi:cli/environment`) and through `wasi:config/store`
//! (`0.2.0-rc.1`, wasmtime's reference host).
//!
//! It has no section of its own: `[env]` and `secrets` are checked with the rest of the
//! manifest, and the node merges in the vars set through the API and the secrets' values
//! ([`super::VersionContext::env`]).

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::{Capability, Grant, InstanceSetup, InstanceState, VersionContext};
use crate::guest::GuestState;
use crate::manifest::ManifestError;

pub struct Config;

/// One version's environment, as both interfaces answer it.
struct Environment {
    pairs: Vec<(String, String)>,
    config: Arc<WasiConfigVariables>,
    by_name: Arc<HashMap<String, String>>,
}

/// What `wasi:config/store` (and Spin's variables) read in one instance.
pub(super) struct ConfigState {
    config: Arc<WasiConfigVariables>,
    by_name: Arc<HashMap<String, String>>,
}

impl ConfigState {
    /// The value of `name`, as `wasi:config/store` would answer it.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(String::as_str)
    }
}

impl InstanceState for ConfigState {}

impl Capability for Config {
    fn name(&self) -> &'static str {
        "config"
    }

    fn link(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, |state: &mut GuestState| {
            WasiConfig::from(&*state.capability::<ConfigState>().state.config)
        })
    }

    fn prepare(&self, version: &VersionContext<'_>) -> Result<Grant, ManifestError> {
        let config = version
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Ok(Arc::new(Environment {
            pairs: version.env.to_vec(),
            config: Arc::new(config),
            by_name: Arc::new(version.env.iter().cloned().collect()),
        }))
    }

    fn instantiate(&self, grant: &Grant, setup: &mut InstanceSetup<'_>) -> Box<dyn InstanceState> {
        let state = match grant.downcast_ref::<Environment>() {
            Some(env) => {
                setup.wasi.envs(&env.pairs);
                ConfigState {
                    config: env.config.clone(),
                    by_name: env.by_name.clone(),
                }
            }
            None => ConfigState {
                config: Arc::default(),
                by_name: Arc::default(),
            },
        };
        Box::new(state)
    }
}
