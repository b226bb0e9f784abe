//! KV stores (`wasi:keyvalue@0.2.0-draft2`: store, atomics, batch; and wasmtime's
//! `0.2.0-draft` beside it, in [`draft`]) over the node's [`KeyValue`] backend.
//!
//! [`Kv`] links the bindings once; checks `[kv]` at deploy and names the bad key; creates
//! the stores a new version lists; builds a [`KvGrant`] per version and a [`KvView`] per
//! call. A guest may open only the stores its manifest lists: any other gets
//! `access-denied`, and a log line says what to add.
//! Limits (key length, value size, quota) are the backend's, so the admin API and guests
//! meet the same ones.

use std::sync::Arc;

use glint_store::{KeyValue, KvStoreName, Level, StoreError, TenantId, Versioned};
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::{Capability, Grant, InstanceSetup, InstanceState, VersionContext};
use crate::guest::GuestState;
use crate::log::{LogSink, LogStream};
use crate::manifest::{FunctionConfig, ManifestError};
use crate::usage::{KvCounts, Usage};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/wasi-http-0.2.12/deps/keyvalue.wit",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });
}

pub(super) use bindings::wasi::keyvalue::{atomics, batch, store};

mod draft;

/// Keys per `list-keys` page.
pub(super) const PAGE: usize = 1000;

/// The manifest key of this capability.
const SECTION: &str = "kv";

/// `[kv]` as written in glint.toml.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KvSection {
    /// The tenant's stores this function may open. A deploy creates any that are missing.
    #[serde(default)]
    pub stores: Vec<String>,
}

impl KvSection {
    /// The stores a manifest lists, checked; none without a `[kv]`.
    pub fn of(config: &FunctionConfig) -> Result<Vec<KvStoreName>, ManifestError> {
        match config.section::<KvSection>(SECTION)? {
            Some(section) => section.validate(),
            None => Ok(Vec::new()),
        }
    }

    pub fn validate(&self) -> Result<Vec<KvStoreName>, ManifestError> {
        let mut out: Vec<KvStoreName> = Vec::new();
        for name in &self.stores {
            let store: KvStoreName = name
                .parse()
                .map_err(|e| ManifestError(format!("`kv.stores`: {e}")))?;
            if out.contains(&store) {
                return Err(ManifestError(format!(
                    "`kv.stores` lists {name:?} twice; list each store once"
                )));
            }
            out.push(store);
        }
        Ok(out)
    }
}

/// KV stores over the node's backend.
pub struct Kv {
    backend: Arc<dyn KeyValue>,
}

impl Kv {
    pub fn new(backend: Arc<dyn KeyValue>) -> Self {
        Self { backend }
    }
}

/// What one version may do with KV: its tenant's stores that its manifest lists.
pub struct KvGrant {
    pub tenant: TenantId,
    pub stores: Vec<KvStoreName>,
    pub backend: Arc<dyn KeyValue>,
}

/// KV in one instance: the version's grant, the invocation's log and its tally.
struct KvInstance {
    grant: Option<Arc<KvGrant>>,
    log: Arc<dyn LogSink>,
    counts: KvCounts,
}

impl InstanceState for KvInstance {
    fn restart(&mut self, log: &Arc<dyn LogSink>) {
        self.log = log.clone();
        self.counts = KvCounts::default();
    }

    fn report(&self, usage: &mut Usage) {
        usage.kv = self.counts;
    }
}

#[async_trait::async_trait]
impl Capability for Kv {
    fn name(&self) -> &'static str {
        SECTION
    }

    fn section(&self) -> Option<&'static str> {
        Some(SECTION)
    }

    /// Links `wasi:keyvalue` store, atomics and batch, of both drafts.
    fn link(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
        bindings::Imports::add_to_linker::<GuestState, HasKv>(linker, kv_view)?;
        draft::link(linker)
    }

    fn check(&self, config: &FunctionConfig) -> Result<(), ManifestError> {
        KvSection::of(config).map(drop)
    }

    /// Creates the stores the version lists that the tenant does not have yet.
    async fn provision(&self, version: &VersionContext<'_>) -> Result<(), StoreError> {
        let stores =
            KvSection::of(version.config).map_err(|e| StoreError::Invalid(e.to_string()))?;
        for store in &stores {
            self.backend.create_store(version.tenant, store).await?;
        }
        Ok(())
    }

    fn prepare(&self, version: &VersionContext<'_>) -> Result<Grant, ManifestError> {
        // No store listed is a grant of none: every `open` is denied.
        Ok(Arc::new(KvGrant {
            tenant: version.tenant.clone(),
            stores: KvSection::of(version.config)?,
            backend: self.backend.clone(),
        }))
    }

    fn instantiate(&self, grant: &Grant, setup: &mut InstanceSetup<'_>) -> Box<dyn InstanceState> {
        Box::new(KvInstance {
            grant: grant.clone().downcast::<KvGrant>().ok(),
            log: setup.log.clone(),
            counts: KvCounts::default(),
        })
    }
}

/// An open store, as the guest holds it.
pub struct Bucket {
    store: KvStoreName,
    /// The draft2 cursors `list-keys` gave through the draft, whose cursors are their
    /// indexes here.
    cursors: Vec<String>,
}

/// A compare-and-swap handle: a key as it was when the handle was made.
pub struct Cas {
    store: KvStoreName,
    key: String,
    seen: Option<Versioned>,
}

/// The KV state of one call: the version's grant and the request's resource table.
pub struct KvView<'a> {
    grant: Option<&'a Arc<KvGrant>>,
    table: &'a mut ResourceTable,
    log: &'a Arc<dyn LogSink>,
    counts: &'a mut KvCounts,
}

struct HasKv;

impl HasData for HasKv {
    type Data<'a> = KvView<'a>;
}

/// The KV view of an instance, for the linked host calls.
pub(super) fn kv_view(state: &mut GuestState) -> KvView<'_> {
    let parts = state.capability::<KvInstance>();
    KvView {
        grant: parts.state.grant.as_ref(),
        table: parts.table,
        log: &parts.state.log,
        counts: &mut parts.state.counts,
    }
}

impl<'a> KvView<'a> {
    /// Counts one call by its result, for metrics.
    pub(super) fn tally<T>(&mut self, result: &Result<T, store::Error>) {
        match result {
            Ok(_) => self.counts.ok += 1,
            Err(store::Error::AccessDenied) => self.counts.denied += 1,
            Err(_) => self.counts.errors += 1,
        }
    }

    fn grant(&self) -> Result<&'a KvGrant, store::Error> {
        self.grant.map(|g| &**g).ok_or(store::Error::AccessDenied)
    }

    fn store_of(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<KvStoreName> {
        Ok(self.table.get(bucket)?.store.clone())
    }

    /// What a call that awaits outside the guest's store needs (WASI 0.3's concurrent host
    /// calls): the version's grant and the store `bucket` opened.
    pub(super) fn target(
        &self,
        bucket: &Resource<Bucket>,
    ) -> wasmtime::Result<Result<(Arc<KvGrant>, KvStoreName), store::Error>> {
        let store = self.store_of(bucket)?;
        Ok(match self.grant {
            Some(grant) => Ok((grant.clone(), store)),
            None => Err(store::Error::AccessDenied),
        })
    }

    /// Opens the store named `identifier` if the grant lists it; a denial is logged with
    /// what to add.
    pub(super) fn open_bucket(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        let granted = self
            .grant()
            .and_then(|g| {
                g.stores
                    .iter()
                    .find(|s| s.as_str() == identifier)
                    .ok_or(store::Error::AccessDenied)
            })
            .cloned();
        self.tally(&granted);
        match granted {
            Ok(store) => Ok(Ok(self.table.push(Bucket {
                store,
                cursors: Vec::new(),
            })?)),
            Err(e) => {
                self.log.line(
                    LogStream::Host,
                    Level::Warn,
                    format!(
                        "KV store {identifier:?} denied: add it to `[kv] stores` in glint.toml and deploy"
                    ),
                );
                Ok(Err(e))
            }
        }
    }

    /// Closes an open store.
    pub(super) fn close_bucket(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

pub(super) fn kv_error(e: StoreError) -> store::Error {
    match e {
        StoreError::NotFound(_) => store::Error::NoSuchStore,
        // The backend's own text (SQLite's) is for the node's log, not for guests.
        StoreError::Backend(detail) => {
            tracing::error!(error = %detail, "KV storage failure");
            store::Error::Other("the KV store failed; the node's log has the details".into())
        }
        StoreError::Unavailable(why) => {
            tracing::warn!(error = %why, "a KV call needs a region out of reach");
            store::Error::Other(why)
        }
        other => store::Error::Other(other.to_string()),
    }
}

/// Runs one backend call and turns its error into the WIT's.
macro_rules! call {
    ($view:expr, |$g:ident| $body:expr) => {{
        let result = match $view.grant() {
            Err(e) => Err(e),
            Ok($g) => $body.await.map_err(kv_error),
        };
        $view.tally(&result);
        Ok(result)
    }};
}

impl store::Host for KvView<'_> {
    /// Checks the grant only: a deploy creates every store its manifest lists, so opening
    /// costs no storage round trip; a store deleted since answers `no-such-store` on use.
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        self.open_bucket(identifier)
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| async {
            Ok(g.backend
                .get(&g.tenant, &store, &key)
                .await?
                .map(|v| v.value))
        })
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| g.backend.set(&g.tenant, &store, &key, value))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| g.backend.delete(&g.tenant, &store, &key))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| async {
            Ok(g.backend.get(&g.tenant, &store, &key).await?.is_some())
        })
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| async {
            let page = g
                .backend
                .list_keys(&g.tenant, &store, None, cursor.as_deref(), PAGE)
                .await?;
            Ok(store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.close_bucket(bucket)
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| g
            .backend
            .increment(&g.tenant, &store, &key, delta))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let handle = self.table.delete(cas)?;
        let grant = match self.grant() {
            Ok(g) => g,
            Err(e) => {
                self.counts.denied += 1;
                return Ok(Err(atomics::CasError::StoreError(e)));
            }
        };
        let expected = handle.seen.as_ref().map(|v| v.version);
        let outcome = grant
            .backend
            .swap(&grant.tenant, &handle.store, &handle.key, expected, value)
            .await;
        self.tally(
            &outcome
                .as_ref()
                .map_err(|_| store::Error::Other(String::new())),
        );
        match outcome {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(now)) => {
                let retry = self.table.push(Cas {
                    seen: now,
                    ..handle
                })?;
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(kv_error(e)))),
        }
    }
}

impl atomics::HostCas for KvView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        let store = self.store_of(&bucket)?;
        let result: wasmtime::Result<Result<Option<Versioned>, store::Error>> =
            call!(self, |g| g.backend.get(&g.tenant, &store, &key));
        let result = result?;
        Ok(match result {
            Ok(seen) => Ok(self.table.push(Cas { store, key, seen })?),
            Err(e) => Err(e),
        })
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let handle = self.table.get(&cas)?;
        Ok(Ok(handle.seen.as_ref().map(|v| v.value.clone())))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| async {
            let values = g.backend.get_many(&g.tenant, &store, keys.clone()).await?;
            Ok(keys
                .into_iter()
                .zip(values)
                .map(|(k, v)| v.map(|v| (k, v)))
                .collect())
        })
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| g.backend.set_many(&g.tenant, &store, key_values))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let store = self.store_of(&bucket)?;
        call!(self, |g| g.backend.delete_many(&g.tenant, &store, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    fn stores(text: &str) -> Result<Vec<KvStoreName>, ManifestError> {
        let config = Manifest::parse(text)?.config(&"hello".parse().unwrap())?;
        KvSection::of(&config)
    }

    #[test]
    fn kv_stores_are_checked() {
        let ok = stores("[kv]\nstores = [\"counters\", \"cache\"]\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert!(stores("").unwrap().is_empty());
        for (text, key) in [
            ("[kv]\nstores = [\"bad name\"]\n", "kv.stores"),
            ("[kv]\nstores = [\"a\", \"a\"]\n", "twice"),
            ("[kv]\nstore = [\"a\"]\n", "store"),
        ] {
            let e = stores(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
