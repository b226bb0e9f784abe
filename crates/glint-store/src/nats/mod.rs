//! The NATS JetStream backend (`nats://HOST:PORT[,HOST:PORT...]`), for many nodes that
//! share one store. One file per trait, like `embedded/`:
//! - `registry.rs`: a function is one document in the registry bucket (versions, aliases,
//!   env inside), so every change to it is one revision-checked write;
//! - `artifacts.rs`: component bytes in an object store, by tenant and sha256;
//! - `keys.rs`, `secrets.rs`: API keys and sealed secrets in the registry bucket;
//! - `kv.rs`: users' KV stores, a bucket per (tenant, store);
//! - `logs.rs`, `usage.rs`: streams with retention by age and size;
//! - `changes.rs`: the change feed, a watch on the registry bucket;
//! - `nodes.rs`: heartbeats and readiness, in a bucket whose entries expire.
//!
//! Names (buckets, streams, subjects, keys) all come from `names.rs`.

mod artifacts;
mod changes;
mod keys;
mod kv;
mod logs;
mod names;
mod nodes;
mod registry;
mod scan;
mod secrets;
mod url;
mod usage;

pub use kv::NatsKv;
pub use url::{NatsAuth, NatsUrl};

use std::time::Duration;

use async_nats::jetstream::{self, kv as jkv, object_store, stream};
use async_trait::async_trait;

use crate::{Close, Result, StoreError};

/// The records of a node on NATS: registry, artifacts, keys, secrets, logs, usage, the
/// change feed and node membership.
pub struct NatsStore {
    client: async_nats::Client,
    js: jetstream::Context,
    ns: String,
    /// Functions, route claims, API keys, secrets.
    registry: jkv::Store,
    /// Node heartbeats and readiness; entries expire, so a node that stops drops out.
    nodes: jkv::Store,
    artifacts: object_store::ObjectStore,
    logs: stream::Stream,
    usage: stream::Stream,
    /// The log retention last applied to the logs stream (max age in s, max bytes).
    log_retention: std::sync::Mutex<Option<(u64, u64)>>,
}

/// How long node entries live without a new heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(15);

impl NatsStore {
    /// Connects to `url`'s servers, and creates the buckets and streams Glint needs if
    /// they are missing. Returns the records and the users' KV stores, on one connection.
    pub async fn open(url: &NatsUrl, limits: crate::KvLimits) -> Result<(NatsStore, NatsKv)> {
        let client = url.connect().await?;
        let js = jetstream::new(client.clone());
        let replicas = url.replicas(&client);
        let ns = url.ns.clone();
        let max_payload = client.server_info().max_payload;
        if max_payload < limits.max_value_bytes + 64 * 1024 {
            return Err(StoreError::Invalid(format!(
                "NATS accepts messages of at most {max_payload} bytes, too few for KV values of {} bytes; \
                 set `max_payload: 8MB` in the server's configuration (deploy/nats/ has one), or lower --kv-max-value-kb",
                limits.max_value_bytes
            )));
        }
        // Each of these opens what exists or makes it, so a cluster that is still
        // electing its leaders is waited for.
        let (registry_bucket, nodes_bucket) =
            (names::registry_bucket(&ns), names::nodes_bucket(&ns));
        let registry = patiently(|| kv_bucket(&js, &registry_bucket, replicas, None)).await?;
        let nodes = patiently(|| kv_bucket(&js, &nodes_bucket, replicas, Some(NODE_TTL))).await?;
        let artifacts = patiently(|| async {
            match js.get_object_store(names::artifacts_bucket(&ns)).await {
                Ok(store) => Ok(store),
                Err(_) => js
                    .create_object_store(object_store::Config {
                        bucket: names::artifacts_bucket(&ns),
                        description: Some("Glint component bytes, by tenant and sha256".into()),
                        storage: stream::StorageType::File,
                        num_replicas: replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| backend("creating the artifacts object store", e)),
            }
        })
        .await?;
        let (logs_stream, logs_subjects) = (names::logs_stream(&ns), names::logs_subjects(&ns));
        let logs = patiently(|| event_stream(&js, &logs_stream, &logs_subjects, replicas)).await?;
        let (usage_stream, usage_subjects) = (names::usage_stream(&ns), names::usage_subjects(&ns));
        let usage =
            patiently(|| event_stream(&js, &usage_stream, &usage_subjects, replicas)).await?;
        // A read from the registry's leader: the store answers from here on.
        patiently(|| async {
            registry
                .entry("meta.ready")
                .await
                .map_err(|e| backend("reading the registry", e))
        })
        .await?;
        let registry_for_kv = registry.clone();
        let store = NatsStore {
            client: client.clone(),
            js,
            ns: ns.clone(),
            registry,
            nodes,
            artifacts,
            logs,
            usage,
            log_retention: std::sync::Mutex::new(None),
        };
        Ok((
            store,
            NatsKv::new(client, registry_for_kv, &ns, replicas, limits),
        ))
    }

    /// The registry's entry at `key` (a delete marker too), read from the bucket's leader,
    /// waiting out an election. `what` names it in errors.
    async fn registry_entry(&self, key: &str, what: &str) -> Result<Option<jkv::Entry>> {
        patiently(|| async { self.registry.entry(key).await.map_err(|e| backend(what, e)) }).await
    }

    /// Whether the connection to NATS is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// Opens a KV bucket, creating it if missing. Reads go to the stream's leader (no direct
/// gets), so a node reads what was acknowledged before. `ttl` makes entries expire.
async fn kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
    ttl: Option<Duration>,
) -> Result<jkv::Store> {
    if let Ok(found) = js.get_key_value(bucket).await {
        return Ok(found);
    }
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: ttl.unwrap_or_default(),
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: false,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(_) => {}
        // Another node made it first.
        Err(_) if js.get_key_value(bucket).await.is_ok() => {}
        Err(e) => return Err(backend(&format!("creating the bucket {bucket}"), e)),
    }
    js.get_key_value(bucket)
        .await
        .map_err(|e| backend(&format!("opening the bucket {bucket}"), e))
}

/// Opens a stream of events (logs, usage), creating it if missing. Its retention is set
/// later, from the node's settings.
async fn event_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    replicas: usize,
) -> Result<stream::Stream> {
    if let Ok(found) = js.get_stream(name).await {
        return Ok(found);
    }
    let config = stream::Config {
        name: name.to_string(),
        subjects: vec![subjects.to_string()],
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_direct: true,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(s) => Ok(s),
        Err(_) if js.get_stream(name).await.is_ok() => js
            .get_stream(name)
            .await
            .map_err(|e| backend(&format!("opening the stream {name}"), e)),
        Err(e) => Err(backend(&format!("creating the stream {name}"), e)),
    }
}

#[async_trait]
impl Close for NatsStore {
    async fn close(&self) -> Result<()> {
        self.client
            .flush()
            .await
            .map_err(|e| backend("flushing", e))
    }
}

/// A NATS error as the storage traits report it: the detail is for the node's log.
fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("NATS: {what}: {e}"))
}

/// How long a read waits out a cluster that is electing a new leader (a server died).
const PATIENCE: Duration = Duration::from_secs(15);

/// Whether an error means the cluster is busy or reconnecting, not that the request is
/// wrong: a timeout, no responders, or no leader yet.
fn transient(e: &StoreError) -> bool {
    let text = e.to_string();
    [
        "timed out",
        "no responders",
        "no stream found",
        "not available",
        "temporarily unavailable",
        "peer offline",
        "no suitable peers",
    ]
    .iter()
    .any(|t| text.contains(t))
}

/// Whether a write failed before any server took it (no stream answered its subject, as
/// while a client reconnects): sending it again cannot apply it twice.
fn unsent(e: &StoreError) -> bool {
    let text = e.to_string();
    text.contains("no stream found") || text.contains("no responders")
}

/// Runs a read again while it fails for a [`transient`] reason, for up to [`PATIENCE`].
/// Only for reads: a write that timed out may have happened.
async fn patiently<T, F, Fut>(read: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    again_while(transient, read).await
}

/// Sends a write again while no server took it ([`unsent`]), for up to [`PATIENCE`].
async fn until_sent<T, F, Fut>(write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    again_while(unsent, write).await
}

async fn again_while<T, F, Fut>(retry: fn(&StoreError) -> bool, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if retry(&e) && tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "NATS is busy; reading again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            done => return done,
        }
    }
}

/// Whether a revision-checked update failed because the key had moved on. The server says
/// so with error 10071, which async-nats names, or 10164 when the stream checks the
/// subject's last sequence, which it does not.
pub(crate) fn lost_race(e: &jkv::UpdateError) -> bool {
    e.kind() == jkv::UpdateErrorKind::WrongLastRevision
        || e.to_string().contains("wrong last sequence")
}

/// JSON for a record, or a backend error.
fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<bytes::Bytes> {
    serde_json::to_vec(value)
        .map(bytes::Bytes::from)
        .map_err(|e| backend(&format!("encoding {what}"), e))
}

/// A record from JSON, or a backend error naming what is corrupt.
fn from_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| backend(&format!("{what} is corrupt"), e))
}
