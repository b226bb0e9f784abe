//! Spin's host interfaces, so Spin components run unchanged: `fermyon:spin/key-value@2.0.0`
//! (spin-sdk up to 5, WASI 0.2) and `spin:key-value/key-value@3.0.0` (spin-sdk 6 and 7,
//! WASI 0.3, in [`v3`]) over the KV capability (the same `[kv] stores` grant, the same
//! backend: Spin's store "default" is the tenant's store named `default`), and
//! `fermyon:spin/variables@2.0.0` and `spin:variables/variables@3.0.0` over the config
//! capability (a variable is the env var of the same name). Spin's other interfaces
//! (SQLite, Redis, MySQL, PostgreSQL, MQTT, LLM) are not linked; the engine refuses a
//! component importing one at deploy, naming it ([`offered`]).

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource};

use super::config::ConfigState;
use super::kv::{Bucket, KvView, PAGE, kv_view, store};
use super::{Capability, Grant, InstanceSetup, InstanceState, VersionContext};
use crate::guest::GuestState;
use crate::manifest::ManifestError;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/fermyon-spin-2.0.0",
        world: "fermyon:spin/glint-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::capabilities::kv::Bucket,
        },
    });
}

use bindings::fermyon::spin::{key_value, variables};

mod v3;

/// The Spin interfaces Glint links, by the prefix of their import names.
const OFFERED: [&str; 4] = [
    "fermyon:spin/key-value@2.0.",
    "fermyon:spin/variables@2.0.",
    "spin:key-value/key-value@3.0.",
    "spin:variables/variables@3.0.",
];

/// Whether Glint offers the Spin interface `import` (a component's import name); `None`
/// when it is not a Spin interface at all.
pub fn offered(import: &str) -> Option<bool> {
    let spin = import.starts_with("fermyon:spin/") || import.starts_with("spin:");
    spin.then(|| OFFERED.iter().any(|o| import.starts_with(o)))
}

/// The names of the Spin interfaces Glint links, for error messages.
pub const OFFERED_NAMES: &str = "fermyon:spin/key-value@2.0.0, fermyon:spin/variables@2.0.0, \
    spin:key-value/key-value@3.0.0 and spin:variables/variables@3.0.0";

pub struct Spin;

struct NoState;

impl InstanceState for NoState {}

struct SpinKv;

impl HasData for SpinKv {
    type Data<'a> = KvView<'a>;
}

/// Spin's variables, read from the config capability's environment.
struct Variables<'a>(&'a ConfigState);

struct SpinVariables;

impl HasData for SpinVariables {
    type Data<'a> = Variables<'a>;
}

fn variables_view(state: &mut GuestState) -> Variables<'_> {
    Variables(state.capability::<ConfigState>().state)
}

impl Capability for Spin {
    fn name(&self) -> &'static str {
        "spin"
    }

    fn link(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
        key_value::add_to_linker::<GuestState, SpinKv>(linker, kv_view)?;
        variables::add_to_linker::<GuestState, SpinVariables>(linker, variables_view)?;
        v3::link(linker)
    }

    fn prepare(&self, _version: &VersionContext<'_>) -> Result<Grant, ManifestError> {
        Ok(Arc::new(()))
    }

    fn instantiate(
        &self,
        _grant: &Grant,
        _setup: &mut InstanceSetup<'_>,
    ) -> Box<dyn InstanceState> {
        Box::new(NoState)
    }
}

fn spin_error(e: store::Error) -> key_value::Error {
    match e {
        store::Error::NoSuchStore => key_value::Error::NoSuchStore,
        store::Error::AccessDenied => key_value::Error::AccessDenied,
        store::Error::Other(why) => key_value::Error::Other(why),
    }
}

type Answer<T> = wasmtime::Result<Result<T, key_value::Error>>;

impl key_value::Host for KvView<'_> {}

impl key_value::HostStore for KvView<'_> {
    async fn open(&mut self, label: String) -> Answer<Resource<Bucket>> {
        Ok(store::Host::open(self, label).await?.map_err(spin_error))
    }

    async fn get(&mut self, this: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        let this = Resource::new_borrow(this.rep());
        Ok(store::HostBucket::get(self, this, key)
            .await?
            .map_err(spin_error))
    }

    async fn set(&mut self, this: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        let this = Resource::new_borrow(this.rep());
        Ok(store::HostBucket::set(self, this, key, value)
            .await?
            .map_err(spin_error))
    }

    async fn delete(&mut self, this: Resource<Bucket>, key: String) -> Answer<()> {
        let this = Resource::new_borrow(this.rep());
        Ok(store::HostBucket::delete(self, this, key)
            .await?
            .map_err(spin_error))
    }

    async fn exists(&mut self, this: Resource<Bucket>, key: String) -> Answer<bool> {
        let this = Resource::new_borrow(this.rep());
        Ok(store::HostBucket::exists(self, this, key)
            .await?
            .map_err(spin_error))
    }

    /// Every key, page by page.
    async fn get_keys(&mut self, this: Resource<Bucket>) -> Answer<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let this = Resource::new_borrow(this.rep());
            match store::HostBucket::list_keys(self, this, cursor).await? {
                Ok(page) => {
                    keys.extend(page.keys);
                    match page.cursor {
                        Some(next) if keys.len() < 100 * PAGE => cursor = Some(next),
                        _ => return Ok(Ok(keys)),
                    }
                }
                Err(e) => return Ok(Err(spin_error(e))),
            }
        }
    }

    async fn drop(&mut self, this: Resource<Bucket>) -> wasmtime::Result<()> {
        store::HostBucket::drop(self, this).await
    }
}

/// Spin's rule for variable names: lower-case letters, digits and '_', starting with a
/// letter.
fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why a variable has no value, in the words both Spin versions' errors carry.
enum Unset {
    InvalidName(String),
    Undefined(String),
}

impl Variables<'_> {
    /// The value of the variable `name`.
    fn lookup(&self, name: &str) -> Result<String, Unset> {
        if !is_variable_name(name) {
            return Err(Unset::InvalidName(format!(
                "{name:?}: a variable name has lower-case letters, digits and '_', and starts with a letter"
            )));
        }
        match self.0.get(name) {
            Some(value) => Ok(value.to_string()),
            None => Err(Unset::Undefined(format!(
                "{name}: add it to the component's [component.<id>.variables] in spin.toml, or to [env] in glint.toml"
            ))),
        }
    }
}

impl variables::Host for Variables<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(self.lookup(&name).map_err(|e| match e {
            Unset::InvalidName(why) => variables::Error::InvalidName(why),
            Unset::Undefined(why) => variables::Error::Undefined(why),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_imports_are_told_apart() {
        assert_eq!(offered("fermyon:spin/key-value@2.0.0"), Some(true));
        assert_eq!(offered("fermyon:spin/variables@2.0.0"), Some(true));
        assert_eq!(offered("spin:key-value/key-value@3.0.0"), Some(true));
        assert_eq!(offered("spin:variables/variables@3.0.0"), Some(true));
        assert_eq!(offered("spin:sqlite/sqlite@3.1.0"), Some(false));
        assert_eq!(offered("fermyon:spin/sqlite@2.0.0"), Some(false));
        assert_eq!(offered("spin:postgres/postgres@3.0.0"), Some(false));
        assert_eq!(offered("wasi:http/types@0.2.0"), None);
        assert!(is_variable_name("api_url2"));
        assert!(!is_variable_name("API_URL"));
        assert!(!is_variable_name("2nd"));
        assert!(!is_variable_name(""));
    }
}
