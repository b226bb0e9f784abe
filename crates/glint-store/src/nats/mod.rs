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
mod copies;
mod direct;
mod keys;
mod kv;
mod logs;
mod names;
mod nodes;
mod registry;
mod scan;
mod secrets;
mod tenants;
mod url;
mod usage;

pub use kv::NatsKv;
pub use url::{NatsAuth, NatsUrl};

use std::time::Duration;

use async_nats::jetstream::{self, kv as jkv, stream};
use async_trait::async_trait;

use crate::{Close, Result, StoreError};

/// The records of a node on NATS: registry, artifacts, keys, secrets, logs, usage, the
/// change feed and node membership.
pub struct NatsStore {
    client: async_nats::Client,
    js: jetstream::Context,
    ns: String,
    /// The NATS cluster of this node's server, which is its region to JetStream (where
    /// its buckets are placed and copied); `None` on a lone server.
    region: Option<String>,
    /// Functions, route claims, API keys, secrets; read from this region's copy.
    registry: copies::Bucket,
    /// Node heartbeats and readiness; entries expire, so a node that stops drops out.
    nodes: copies::Bucket,
    artifacts: artifacts::Copies,
    /// This region's log lines and usage: written here, read from every region.
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
    ///
    /// In a supercluster, a node opens its region's copies first: a node that starts
    /// while its region is cut off from the others reads everything it serves.
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
        let region = client.server_info().cluster.filter(|c| !c.is_empty());
        let here = region.as_deref();
        // Each of these opens what exists or makes it, so a cluster that is still
        // electing its leaders is waited for.
        let (registry_bucket, nodes_bucket) =
            (names::registry_bucket(&ns), names::nodes_bucket(&ns));
        let registry = copies::Bucket::open(
            &js,
            here,
            &registry_bucket,
            replicas,
            Some(kv_config(&registry_bucket, replicas, None)),
        )
        .await?;
        let nodes = copies::Bucket::open(
            &js,
            here,
            &nodes_bucket,
            replicas,
            Some(stream::Config {
                // Any server may answer reads of heartbeats, a moment stale or not: a
                // region cut off from the others still reads its own.
                allow_direct: true,
                ..kv_config(&nodes_bucket, replicas, Some(NODE_TTL))
            }),
        )
        .await?;
        let artifacts =
            artifacts::Copies::open(&js, here, &names::artifacts_bucket(&ns), replicas).await?;
        let (logs_stream, logs_subjects) = (
            names::events_stream(&ns, names::Events::Logs, here),
            names::events_subjects(&ns, names::Events::Logs, here),
        );
        let logs =
            patiently(|| event_stream(&js, &logs_stream, &logs_subjects, here, replicas)).await?;
        let (usage_stream, usage_subjects) = (
            names::events_stream(&ns, names::Events::Usage, here),
            names::events_subjects(&ns, names::Events::Usage, here),
        );
        let usage =
            patiently(|| event_stream(&js, &usage_stream, &usage_subjects, here, replicas)).await?;
        // A read from the registry's copy: the store answers from here on.
        registry.entry("meta.ready", "reading the registry").await?;
        let store = NatsStore {
            client: client.clone(),
            js,
            ns: ns.clone(),
            region,
            registry: registry.clone(),
            nodes,
            artifacts,
            logs,
            usage,
            log_retention: std::sync::Mutex::new(None),
        };
        store.list_region().await;
        store.move_route_claims().await;
        let kv = NatsKv::new(
            client,
            registry,
            store.region.clone(),
            &ns,
            replicas,
            limits,
        );
        kv.copy_every_store();
        Ok((store, kv))
    }

    /// The registry's entry at `key` (a delete marker too), from this region's copy,
    /// waiting out an election. `what` names it in errors.
    async fn registry_entry(&self, key: &str, what: &str) -> Result<Option<jkv::Entry>> {
        self.registry.entry(key, what).await
    }

    /// The registry's entry at `key` as its origin has it, for a revision-checked write.
    async fn registry_entry_at_origin(&self, key: &str, what: &str) -> Result<Option<jkv::Entry>> {
        self.registry.entry_at_origin(key, what).await
    }

    /// Whether the connection to NATS is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Lists this node's region in the registry (`region.<name>`), with its streams of
    /// logs and usage, so queries read every region's. Left for the next start when the
    /// registry's origin cannot be reached.
    async fn list_region(&self) {
        let Some(region) = &self.region else { return };
        let key = names::region_key(region);
        if self
            .registry
            .entry(&key, "reading a region")
            .await
            .is_ok_and(|e| e.is_some())
        {
            return;
        }
        let listing = RegionListing {
            region: region.clone(),
            logs: self.logs.cached_info().config.name.clone(),
            usage: self.usage.cached_info().config.name.clone(),
        };
        let Ok(bytes) = to_json("a region", &listing) else {
            return;
        };
        match self.registry.write.create(&key, bytes).await {
            Ok(revision) => self.registry.settle(&key, revision).await,
            Err(e) if e.kind() == jkv::CreateErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::warn!(region, error = %e, "could not list this region in the registry; \
                its logs and usage are read by other regions once it is")
            }
        }
    }

    /// Every region's listing; this node's region alone when none is listed yet.
    async fn regions(&self) -> Vec<RegionListing> {
        let mut out = listed_regions(&self.client, &self.registry).await;
        let own = self.logs.cached_info().config.name.clone();
        if !out.iter().any(|r| r.logs == own) {
            out.push(RegionListing {
                region: self.region.clone().unwrap_or_default(),
                logs: own,
                usage: self.usage.cached_info().config.name.clone(),
            });
        }
        out
    }
}

/// The regions listed in the registry, as this region's copy has them.
async fn listed_regions(
    client: &async_nats::Client,
    registry: &copies::Bucket,
) -> Vec<RegionListing> {
    match scan::entries(client, &registry.here, "region.*").await {
        Ok(found) => found
            .iter()
            .filter_map(|f| from_json("a region", &f.value).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the list of regions");
            Vec::new()
        }
    }
}

/// A region, as the registry lists it: where its nodes write logs and usage.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub(crate) struct RegionListing {
    region: String,
    logs: String,
    usage: String,
}

/// The stream of a KV bucket. Reads go to the stream's leader (no direct gets), so a
/// node reads what was acknowledged before. `ttl` makes entries expire.
fn kv_config(bucket: &str, replicas: usize, ttl: Option<Duration>) -> stream::Config {
    stream::Config {
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
    }
}

/// Opens a stream of events (logs, usage), creating it if missing, in `region`. Its
/// retention is set later, from the node's settings.
async fn event_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    region: Option<&str>,
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
        placement: region.map(|r| stream::Placement {
            cluster: Some(r.to_string()),
            tags: Vec::new(),
        }),
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
/// JetStream's "temporarily unavailable" (10008, no meta leader) is said plainly: it is
/// what a region cut off from the others gets for anything but reads of its copies.
fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    let text = e.to_string();
    if text.contains("10008") {
        return StoreError::Unavailable(format!(
            "{what}: JetStream cannot reach a majority of its servers now, as when this region is cut off \
             from the others ({text}); functions keep serving from this region's copies; try again once \
             the regions are joined"
        ));
    }
    StoreError::Backend(format!("NATS: {what}: {text}"))
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
    again_while(transient, PATIENCE, read).await
}

/// Runs `op` again while it fails in a way `retry` accepts, for up to `patience`.
async fn again_while<T, F, Fut>(
    retry: fn(&StoreError) -> bool,
    patience: Duration,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if retry(&e) && tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "NATS is busy; reading again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            // Busy for all of `patience`: said plainly, with what was seen last.
            Err(StoreError::Backend(detail)) if retry(&StoreError::Backend(detail.clone())) => {
                return Err(StoreError::Unavailable(format!(
                    "NATS did not answer in {patience:?}, as when this region is cut off from the others \
                     or the servers are electing leaders ({detail}); functions keep serving from what \
                     this region has; try again shortly"
                )));
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
