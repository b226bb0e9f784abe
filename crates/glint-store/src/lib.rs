//! Where Glint keeps its data: the storage traits and their backends.
//!
//! The node and the runtime never talk to a database directly. They use the traits here:
//! [`Registry`] (functions, versions, aliases, env vars), [`Artifacts`] (component bytes,
//! addressed by sha256), [`LogStore`] (guest log lines), [`KeyStore`] (API keys, kept
//! only as hashes) and [`Secrets`] (sealed secret values). [`Store`] is all of them.
//! Users' KV stores sit behind [`KeyValue`], apart, because their traffic comes from guests.
//!
//! A node opens them all from one store URL with [`Stores::open`], and closes them with
//! [`Stores::close`] ([`Close`] is part of [`Store`] and [`KeyValue`]). It never names a
//! backend; `open.rs` is the one place that does.
//!
//! Backends:
//! - `embedded/` (`sqlite:DIR`): SQLite in WAL mode, `glint.db` and `kv.db` in DIR. The
//!   default, for a node that runs alone.
//! - `nats/` (`nats://HOST:PORT,...`): NATS JetStream, for many nodes on one store (the
//!   `nats` feature).
//!
//! The backends and [`Stores`] come with the `sqlite` feature (on by default); without it
//! the crate is the traits and typed names only, as `glint-runtime` uses it.

#[cfg(feature = "sqlite")]
mod embedded;
#[cfg(any(feature = "sqlite", feature = "nats"))]
mod kv_rules;
pub mod model;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "sqlite")]
mod open;
#[cfg(any(feature = "sqlite", feature = "nats"))]
mod registry_rules;

use async_trait::async_trait;

pub use model::*;
#[cfg(feature = "sqlite")]
pub use open::{StoreUrl, Stores};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("function '{0}' does not exist; `glint list` shows the deployed functions")]
    FunctionNotFound(FunctionName),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    Invalid(String),
    /// A KV limit (key length, value size, batch size or a store's quota).
    #[error("{0}")]
    Limit(String),
    #[error("storage error: {0}")]
    Backend(String),
    /// What the call needs is in a region this node cannot reach now (a write whose
    /// origin is there); the message says which, and is fit for users and guests.
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new version, as a deploy hands it to the registry.
#[derive(Clone, Debug)]
pub struct NewVersion {
    pub tenant: TenantId,
    pub function: FunctionName,
    pub route: String,
    pub component: Vec<u8>,
    pub sha256: String,
    pub manifest: String,
    /// The HTTP world the component speaks (`wasi-0.2` or `wasi-0.3`).
    pub world: String,
    /// The alias to point at the new version alone, if any (normally `latest`).
    pub move_alias: Option<AliasName>,
}

/// Functions, their versions, aliases and env vars.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Stores a version and, in the same transaction, creates the function if it is new,
    /// updates its route and moves the alias. Durable once it returns.
    async fn deploy(&self, new: NewVersion) -> Result<VersionRecord>;
    /// Every function of every tenant, for a node that starts up.
    async fn all_functions(&self) -> Result<Vec<FunctionRecord>>;
    async fn functions(&self, tenant: &TenantId) -> Result<Vec<FunctionRecord>>;
    async fn function(&self, tenant: &TenantId, name: &FunctionName) -> Result<FunctionRecord>;
    async fn versions(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<VersionRecord>>;
    async fn version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<VersionRecord>;
    async fn aliases(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<AliasRecord>>;
    /// Points an alias at versions with weights. Every version must exist.
    async fn set_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
        targets: Vec<AliasTarget>,
    ) -> Result<AliasRecord>;
    async fn delete_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
    ) -> Result<()>;
    /// Deletes a function with its versions, aliases, env vars and logs.
    async fn delete_function(&self, tenant: &TenantId, name: &FunctionName) -> Result<()>;
    /// Deletes one version; refused while an alias points to it.
    async fn delete_version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<()>;
    async fn env(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<(String, String)>>;
    async fn set_env(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        key: &str,
        value: &str,
    ) -> Result<()>;
    async fn unset_env(&self, tenant: &TenantId, name: &FunctionName, key: &str) -> Result<()>;
}

/// Component bytes, addressed by their sha256 within a tenant.
#[async_trait]
pub trait Artifacts: Send + Sync {
    async fn artifact(&self, tenant: &TenantId, sha256: &str) -> Result<Vec<u8>>;
}

/// Guest log lines.
#[async_trait]
pub trait LogStore: Send + Sync {
    async fn append_logs(&self, lines: Vec<LogRecord>) -> Result<()>;
    /// The newest `query.lines` lines that match (the oldest, with `oldest_first`), in
    /// time order.
    async fn logs(&self, tenant: &TenantId, query: LogQuery) -> Result<Vec<LogRecord>>;
    /// Deletes lines older than `before_ms`, then the oldest lines until the rest take at
    /// most `max_bytes`. Returns how many lines went.
    async fn prune_logs(&self, before_ms: i64, max_bytes: u64) -> Result<u64>;
}

/// Usage, per function, version and minute.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds each record to the one for its function, version and minute.
    /// `batch` names these records for as long as they may be sent again (a node sends
    /// a batch again after an error): a store that may have taken a batch whose answer
    /// was lost takes it once (NATS: within JetStream's duplicate window, 2 minutes).
    async fn add_usage(
        &self,
        tenant: &TenantId,
        batch: &str,
        records: Vec<UsageRecord>,
    ) -> Result<()>;
    /// Records of minutes in `[start_ms, end_ms)`, of one function or all.
    async fn usage(
        &self,
        tenant: &TenantId,
        function: Option<&FunctionName>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<UsageRecord>>;
}

/// API keys. Only a key's sha256 is stored; the key itself is shown once, at creation.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key. A key whose hash is stored already keeps its record as it is, and a
    /// revoked key stays revoked: revocation is final.
    async fn create_key(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        key_hash: &str,
        prefix: &str,
    ) -> Result<ApiKeyRecord>;
    async fn keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>>;
    /// Every live key with its hash, for the node's in-memory auth table.
    async fn all_key_hashes(&self) -> Result<Vec<(String, ApiKeyRecord)>>;
    async fn revoke_key(&self, tenant: &TenantId, id: &str) -> Result<()>;
    /// Gives a live key another role (a node upgraded to tenants makes its first keys
    /// the operator's).
    async fn set_key_role(&self, tenant: &TenantId, id: &str, role: Role) -> Result<()>;
    /// Whether any key was ever stored, revoked ones included.
    async fn any_key_made(&self) -> Result<bool>;
}

/// Secret values, sealed by the node before they get here: the store never sees plaintext.
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn set_secret(&self, tenant: &TenantId, name: &str, sealed: Vec<u8>) -> Result<()>;
    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<SecretRecord>>;
    /// Every secret of the tenant with its sealed value.
    async fn sealed_secrets(&self, tenant: &TenantId) -> Result<Vec<(String, Vec<u8>)>>;
    async fn delete_secret(&self, tenant: &TenantId, name: &str) -> Result<()>;
}

/// A backend's clean end, part of [`Store`] and of [`KeyValue`]. A backend that
/// implements both is closed through each, so a second call must do no harm.
#[async_trait]
pub trait Close: Send + Sync {
    /// Makes everything written so far durable in the backend's own form (the embedded
    /// backend checkpoints its WAL into the main file). The node calls it once, on a
    /// clean shutdown, after its last write.
    async fn close(&self) -> Result<()>;
}

/// A change to the records, as every node learns it from [`Changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A function was deployed, changed (alias, env, version deleted) or deleted.
    Function {
        tenant: TenantId,
        name: FunctionName,
    },
    /// A secret of the tenant was set or deleted.
    Secrets { tenant: TenantId },
    /// An API key was made or revoked.
    Keys,
    /// A tenant was made, suspended or resumed.
    Tenant { tenant: TenantId },
    /// Changes may have been missed (the feed lagged or was cut): reload everything.
    Reset,
}

/// The change feed: how a node learns what other nodes (and itself) changed, so that a
/// change made on any node takes effect on all.
#[async_trait]
pub trait Changes: Send + Sync {
    /// Every change made from now on, by any node, in order. The feed never ends while
    /// the node runs; after an outage it sends [`Change::Reset`].
    async fn changes(&self) -> Result<tokio::sync::mpsc::Receiver<Change>>;
}

/// A node as it last reported itself.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct NodeRecord {
    pub id: String,
    pub region: String,
    /// Where the node's API answers.
    pub address: String,
    /// Glint's version.
    pub version: String,
    pub started_at_ms: i64,
    /// Its last heartbeat.
    pub seen_at_ms: i64,
    /// Functions in its route table.
    pub functions: usize,
}

/// One region's copy of a shared bucket, as the store reports it (the NATS backend in a
/// supercluster: a JetStream mirror).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct CopyState {
    /// The region that keeps the copy (its NATS cluster).
    pub region: String,
    /// What it copies: `registry`, `nodes` or `artifacts`.
    pub of: String,
    /// Messages it has yet to copy from the origin.
    pub lag: Option<u64>,
    /// How long ago it last heard from the origin.
    pub active_ms_ago: Option<u64>,
    /// Why its state could not be read (its region out of reach).
    pub error: Option<String>,
}

/// The nodes that share a store: heartbeats, and which versions each one serves.
#[async_trait]
pub trait Nodes: Send + Sync {
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()>;
    /// The nodes heard from lately, by id. A node that stops heartbeating drops out.
    async fn nodes(&self) -> Result<Vec<NodeRecord>>;
    /// Says that `node` serves `version` now.
    async fn set_ready(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
        version: VersionId,
        node: &str,
    ) -> Result<()>;
    /// The nodes that said they serve `version`, each with when (ms since the epoch).
    async fn ready(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
        version: VersionId,
    ) -> Result<Vec<(String, i64)>>;
    /// `Err` with the reason while the store cannot serve (unreachable, or still
    /// recovering after an outage). It asks the store, so it takes a round trip.
    async fn health(&self) -> std::result::Result<(), String>;
    /// Every region's copies of what the regions share, and how far behind each is;
    /// none for a store that is not copied between regions.
    async fn copies(&self) -> Result<Vec<CopyState>> {
        Ok(Vec::new())
    }
}

/// The tenants of a store. `default` always exists: a single-user node runs everything
/// under it, and the operator's keys belong to it.
#[async_trait]
pub trait Tenants: Send + Sync {
    /// Makes a tenant; [`StoreError::Conflict`] if it exists.
    async fn create_tenant(&self, id: &TenantId) -> Result<TenantRecord>;
    /// [`StoreError::NotFound`] if there is none by that name.
    async fn tenant(&self, id: &TenantId) -> Result<TenantRecord>;
    /// Every tenant, by name.
    async fn tenants(&self) -> Result<Vec<TenantRecord>>;
    /// Suspends or resumes a tenant; [`StoreError::NotFound`] if there is none.
    async fn set_tenant_status(&self, id: &TenantId, status: TenantStatus) -> Result<TenantRecord>;
    /// Sets the quotas the operator chose for a tenant (those not set are the defaults);
    /// [`StoreError::NotFound`] if there is none.
    async fn set_quotas(&self, id: &TenantId, quotas: Quotas) -> Result<TenantRecord>;
    /// Deletes everything the tenant has here (its KV stores are
    /// [`KeyValue::delete_stores`]'s), then its record, and counts what went. Its status
    /// must be [`TenantStatus::Deleting`] already, so nothing new arrives meanwhile;
    /// running it again finishes a deletion that was cut short.
    async fn delete_tenant(&self, id: &TenantId) -> Result<Removed>;
}

/// Everything a node needs from storage, except KV.
pub trait Store:
    Registry
    + Artifacts
    + LogStore
    + KeyStore
    + Secrets
    + UsageStore
    + Changes
    + Nodes
    + Tenants
    + Close
{
}

impl<
    T: Registry
        + Artifacts
        + LogStore
        + KeyStore
        + Secrets
        + UsageStore
        + Changes
        + Nodes
        + Tenants
        + Close,
> Store for T
{
}

/// Users' KV stores. Every write is durable when it returns, and checks [`KvLimits`].
/// Values of a missing store are an error ([`StoreError::NotFound`]); stores are created
/// by a deploy whose manifest names them, or by [`KeyValue::create_store`].
#[async_trait]
pub trait KeyValue: Close {
    fn limits(&self) -> KvLimits;
    /// Creates the store if it does not exist yet.
    async fn create_store(&self, tenant: &TenantId, store: &KvStoreName) -> Result<()>;
    async fn stores(&self, tenant: &TenantId) -> Result<Vec<KvStoreRecord>>;
    /// Deletes every store of the tenant with its keys, as deleting the tenant does.
    async fn delete_stores(&self, tenant: &TenantId) -> Result<KvRemoved>;
    async fn get(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
    ) -> Result<Option<Versioned>>;
    async fn set(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()>;
    async fn delete(&self, tenant: &TenantId, store: &KvStoreName, key: &str) -> Result<()>;
    /// Keys in order, starting after `after`, at most `limit`, optionally with a prefix.
    async fn list_keys(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage>;
    /// Adds `delta` to the key's decimal value (missing counts as 0); returns the result.
    async fn increment(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        delta: i64,
    ) -> Result<i64>;
    /// Writes `value` if the key is still at `expected` (`None`: still missing). Otherwise
    /// writes nothing and returns the key's current state.
    async fn swap(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        expected: Option<i64>,
        value: Vec<u8>,
    ) -> Result<Result<(), Option<Versioned>>>;
    async fn get_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>>;
    /// All pairs or none.
    async fn set_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<()>;
    async fn delete_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        keys: Vec<String>,
    ) -> Result<()>;
}
