//! Configuration over `wasi:config/store`. On Glint the values are the function's `[env]`
//! variables (glint.toml, or `glint env set`) and the secrets it was granted (glint.toml's
//! top-level `secrets = [...]`).
//!
//! ```no_run
//! let greeting = glint::config::get("GREETING")?.unwrap_or_else(|| "Hello".to_string());
//! # Ok::<(), glint::config::Error>(())
//! ```

use crate::bindings::wasi::config::store;

/// An error from the configuration source, as `wasi:config` reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The source behind the host failed.
    #[error("config source failed: {0}")]
    Upstream(String),
    /// Reading the value failed.
    #[error("config I/O failed: {0}")]
    Io(String),
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Upstream(message) => Error::Upstream(message),
            store::Error::Io(message) => Error::Io(message),
        }
    }
}

/// The value called `name`, or `None` if it is not set.
pub fn get(name: &str) -> Result<Option<String>, Error> {
    Ok(store::get(name)?)
}

/// Every name and value the function can see.
pub fn get_all() -> Result<Vec<(String, String)>, Error> {
    Ok(store::get_all()?)
}
