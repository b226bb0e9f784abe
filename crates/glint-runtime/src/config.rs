//! Configuration (`wasi:config/store@0.2.0-rc.1`): the function's env vars and granted
//! secrets, the same values the guest sees as environment variables.
//!
//! Shaped like every capability: [`add_to_linker`] links wasmtime's reference host once;
//! the values are checked at deploy with the rest of `[env]` and `secrets`; the node builds
//! a [`ConfigVars`] map per version, which each request borrows.

use wasmtime::component::Linker;
use wasmtime_wasi_config::WasiConfig;
pub use wasmtime_wasi_config::WasiConfigVariables as ConfigVars;

use crate::guest::GuestState;

pub fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    wasmtime_wasi_config::add_to_linker(linker, |state: &mut GuestState| {
        WasiConfig::from(&*state.config)
    })
}
