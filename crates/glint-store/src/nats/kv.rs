//! Users' KV stores on JetStream: one KV bucket per (tenant, store), keys escaped into
//! NATS's alphabet ([`super::names`]). A key's version is its revision, a stream sequence,
//! which never repeats: `increment` and `swap` are revision-checked updates, atomic under
//! any number of nodes. Each store is listed in the registry bucket
//! (`kvs.<tenant>.<store>`), so a tenant's stores are found without listing the account's
//! streams.
//!
//! Unlike the embedded backend, `set_many` and `delete_many` write key by key: a failure
//! part way leaves the keys before it written, which `wasi:keyvalue/batch` allows ("not
//! atomic"); JetStream's atomic batch publish could make them all-or-none. `list_keys`
//! reads every key of the store for each page: NATS filters subjects by whole tokens, not
//! by a string prefix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::copies;

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::copies::Bucket;
use super::{backend, lost_race, names};
use crate::model::*;
use crate::{Close, KeyValue, Result, StoreError, kv_rules};

/// How often a revision-checked update is tried again when another writer got there first.
const MAX_TRIES: usize = 200;

/// Every live key of a bucket, escaped, read again while the cluster is busy (a loaded
/// cluster can time out the consumer that lists them; CI saw it).
async fn escaped_keys(client: &async_nats::Client, bucket: &Bucket) -> Result<Vec<String>> {
    let bucket = &bucket.here;
    if bucket.stream.cached_info().config.mirror.is_some() {
        let found = super::scan::entries(client, bucket, ">").await?;
        return Ok(found.into_iter().map(|f| f.key).collect());
    }
    super::patiently(|| async {
        bucket
            .keys()
            .await
            .map_err(|e| backend("listing keys", e))?
            .try_collect()
            .await
            .map_err(|e| backend("listing keys", e))
    })
    .await
}

/// Deletes the stream `name`; one that is not there is gone already.
async fn delete_stream(js: &jetstream::Context, name: &str) -> Result<()> {
    match js.delete_stream(name).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("stream not found") => Ok(()),
        Err(e) => Err(backend(&format!("deleting the stream {name}"), e)),
    }
}

/// Users' KV stores on one NATS cluster.
#[derive(Clone)]
pub struct NatsKv {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Prefixes every bucket, so deployments (and tests) can share one NATS.
    ns: String,
    replicas: usize,
    limits: KvLimits,
    /// The NATS cluster of this node's server (see [`super::NatsStore`]): stores made
    /// here have their origin here, and stores made elsewhere get a copy here.
    region: Option<String>,
    /// The registry bucket, which lists each tenant's stores (`kvs.<tenant>.<store>`).
    registry: Bucket,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    /// One lock per (bucket, key) being incremented on this node now.
    key_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// A store's entry in the registry.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoreListing {
    created_at_ms: i64,
}

/// What a key holds now, and the revision a write must expect to replace it.
struct Current {
    value: Option<Versioned>,
    revision: u64,
}

impl NatsKv {
    pub(crate) fn new(
        client: async_nats::Client,
        registry: Bucket,
        region: Option<String>,
        ns: &str,
        replicas: usize,
        limits: KvLimits,
    ) -> Self {
        Self {
            js: jetstream::new(client.clone()),
            client,
            registry,
            region,
            ns: ns.to_string(),
            replicas,
            limits,
            buckets: Arc::default(),
            key_locks: Arc::default(),
        }
    }

    /// Opens every tenant's store in the background, which makes this region's copy of
    /// each store made elsewhere: a node that starts in this region later, while the
    /// store's origin cannot be reached, still reads it.
    pub(crate) fn copy_every_store(&self) {
        if self.region.is_none() {
            return;
        }
        let kv = self.clone();
        tokio::spawn(async move {
            let listed = match super::scan::entries(&kv.client, &kv.registry.here, "kvs.>").await {
                Ok(listed) => listed,
                Err(e) => return tracing::debug!(error = %e, "cannot list the KV stores to copy"),
            };
            for found in listed {
                let mut parts = found.key.splitn(3, '.').skip(1);
                let (Some(Ok(tenant)), Some(Ok(store))) = (
                    parts.next().map(str::parse::<TenantId>),
                    parts.next().map(str::parse::<KvStoreName>),
                ) else {
                    continue;
                };
                if let Err(e) = kv.bucket(&tenant, &store).await {
                    tracing::debug!(store = %store, error = %e, "cannot copy a KV store to this region yet");
                }
            }
        });
    }

    /// Makes a copy of the new store `name` (whose stream is `info`) in every other
    /// listed region, so each region reads it from the start.
    async fn copy_to_regions(&self, info: &jetstream::stream::Info) {
        for listing in super::listed_regions(&self.client, &self.registry).await {
            if Some(&listing.region) == self.region.as_ref() {
                continue;
            }
            // As many copies there as here, or one where that region has fewer servers.
            let mut made =
                copies::make_mirror(&self.js, &listing.region, info, self.replicas).await;
            if made.is_err() && self.replicas > 1 {
                made = copies::make_mirror(&self.js, &listing.region, info, 1).await;
            }
            if let Err(e) = made {
                tracing::warn!(region = listing.region, error = %e,
                    "cannot copy a new KV store to another region now; its first call there makes the copy");
            }
        }
    }

    /// The store's bucket: its origin for writes, this region's copy for reads (made
    /// here on the first call in this region, which waits for its first copy).
    async fn bucket(&self, tenant: &TenantId, store: &KvStoreName) -> Result<Bucket> {
        // Fail at once, not after a timeout, while NATS cannot be reached.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(StoreError::Backend(
                "this node has lost its connection to NATS; KV calls fail until it is back".into(),
            ));
        }
        let name = names::user_bucket(&self.ns, tenant, store);
        if let Some(found) = self.buckets.lock().unwrap().get(&name) {
            return Ok(found.clone());
        }
        let opened = match Bucket::open(
            &self.js,
            self.region.as_deref(),
            &name,
            self.replicas,
            None,
        )
        .await
        {
            Ok(opened) => opened,
            Err(StoreError::NotFound(_)) => return Err(kv_rules::no_store(store)),
            Err(e) => return Err(e),
        };
        self.buckets.lock().unwrap().insert(name, opened.clone());
        Ok(opened)
    }

    /// The lock of one key on this node; locks nobody holds are dropped.
    fn key_lock(&self, bucket: &str, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.key_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(format!("{bucket}/{key}")).or_default().clone()
    }

    /// What `key` holds in this region's copy, or (`at_origin`, for a write that
    /// depends on it) at the origin.
    async fn current(&self, bucket: &Bucket, key: &str, at_origin: bool) -> Result<Current> {
        let escaped = names::escape_key(key);
        let entry = if at_origin {
            bucket.entry_at_origin(&escaped, "reading a key").await?
        } else {
            bucket.entry(&escaped, "reading a key").await?
        };
        Ok(match entry {
            None => Current {
                value: None,
                revision: 0,
            },
            Some(e) if e.operation == kv::Operation::Put => Current {
                revision: e.revision,
                value: Some(Versioned {
                    value: e.value.to_vec(),
                    version: e.revision as i64,
                }),
            },
            // A delete marker: the key is gone, and a write replaces the marker.
            Some(e) => Current {
                value: None,
                revision: e.revision,
            },
        })
    }

    /// Maps a failed write: a full bucket is the store's quota.
    fn write_error(
        &self,
        bucket: &Bucket,
        store: &KvStoreName,
        e: impl std::fmt::Display,
    ) -> StoreError {
        let text = e.to_string();
        if text.contains("maximum bytes exceeded") || text.contains("insufficient resources") {
            return StoreError::Limit(format!(
                "KV store '{store}' is full: this write would take it over its quota of {} bytes; \
                 delete keys to make room",
                self.limits.store_quota_bytes
            ));
        }
        bucket.unreachable("writing a key", text)
    }
}

#[async_trait]
impl Close for NatsKv {
    async fn close(&self) -> Result<()> {
        self.client
            .flush()
            .await
            .map_err(|e| backend("flushing", e))
    }
}

#[async_trait]
impl KeyValue for NatsKv {
    fn limits(&self) -> KvLimits {
        self.limits
    }

    /// Makes the store's bucket, then lists it in the registry: a crash between the two
    /// leaves a bucket that the next deploy naming the store lists.
    async fn create_store(&self, tenant: &TenantId, store: &KvStoreName) -> Result<()> {
        let key = names::kv_store_key(tenant, store);
        let listed = self
            .registry
            .entry_at_origin(&key, "reading a KV store's record")
            .await?
            .is_some_and(|e| e.operation == kv::Operation::Put);
        if listed && self.bucket(tenant, store).await.is_ok() {
            return Ok(());
        }
        let config = kv::Config {
            bucket: names::user_bucket(&self.ns, tenant, store),
            description: format!("Glint KV store '{store}' of tenant '{tenant}'"),
            history: 1,
            max_bytes: self.limits.store_quota_bytes as i64,
            max_value_size: self.limits.max_value_bytes as i32,
            num_replicas: self.replicas,
            storage: jetstream::stream::StorageType::File,
            placement: self.region.as_ref().map(|r| jetstream::stream::Placement {
                cluster: Some(r.clone()),
                tags: Vec::new(),
            }),
            ..Default::default()
        };
        let made = super::patiently(|| async {
            match self.js.create_key_value(config.clone()).await {
                Ok(made) => Ok(Some(made)),
                // Another node made it first, or it was made before a crash.
                Err(_) if self.bucket(tenant, store).await.is_ok() => Ok(None),
                Err(e) => Err(backend("creating a KV store", e)),
            }
        })
        .await?;
        if let Some(made) = made
            && let Ok(info) = made.stream.get_info().await
        {
            self.copy_to_regions(&info).await;
        }
        let record = super::to_json(
            "a KV store's record",
            &StoreListing {
                created_at_ms: now_ms(),
            },
        )?;
        let made = self
            .registry
            .send(|| async {
                match self
                    .registry
                    .write
                    .create(key.as_str(), record.clone())
                    .await
                {
                    Ok(revision) => Ok(Some(revision)),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                    Err(e) => Err(self.registry.unreachable("listing a KV store", e)),
                }
            })
            .await?;
        if let Some(revision) = made {
            self.registry.settle(&key, revision).await;
        }
        Ok(())
    }

    async fn stores(&self, tenant: &TenantId) -> Result<Vec<KvStoreRecord>> {
        let listed = super::scan::entries(
            &self.client,
            &self.registry.here,
            &format!("kvs.{tenant}.*"),
        )
        .await?;
        let mut out = Vec::with_capacity(listed.len());
        for found in listed {
            let listing: StoreListing = super::from_json("a KV store's record", &found.value)?;
            let name: KvStoreName = found
                .key
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|e| backend("a KV store's record has a bad name", e))?;
            let bucket = self.bucket(tenant, &name).await?;
            // Asked now: the bucket's handle keeps the stream's state from when it opened.
            let info = bucket
                .here
                .stream
                .get_info()
                .await
                .map_err(|e| backend("reading a KV store", e))?;
            let keys = escaped_keys(&self.client, &bucket).await?.len() as u64;
            out.push(KvStoreRecord {
                name,
                keys,
                // The server's measure: the stored messages with their subjects.
                bytes: info.state.bytes,
                created_at_ms: listing.created_at_ms,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete_stores(&self, tenant: &TenantId) -> Result<KvRemoved> {
        // From the listings, not by opening each store: a deletion cut short may have
        // deleted a store's stream and not yet its listing.
        let listed = super::scan::entries(
            &self.client,
            &self.registry.here,
            &format!("kvs.{tenant}.*"),
        )
        .await?;
        let regions = super::listed_regions(&self.client, &self.registry).await;
        let mut removed = KvRemoved::default();
        for found in listed {
            let Some(Ok(store)) = found.key.rsplit('.').next().map(str::parse::<KvStoreName>)
            else {
                continue;
            };
            let bucket = names::user_bucket(&self.ns, tenant, &store);
            let origin = format!("KV_{bucket}");
            if let Ok(stream) = self.js.get_stream(&origin).await {
                let state = &stream.cached_info().state;
                // Its keys: the subjects holding a value (a deleted key's marker counts
                // until it is purged).
                removed.keys += state.subjects_count;
                removed.bytes += state.bytes;
            }
            // The copies first, then the origin, then the listing: a deletion cut short
            // is found again by the listing, and finished.
            for listing in &regions {
                let copy = copies::mirror_name(&origin, &listing.region);
                if copy != origin {
                    delete_stream(&self.js, &copy).await?;
                }
            }
            delete_stream(&self.js, &origin).await?;
            self.buckets.lock().unwrap().remove(&bucket);
            self.registry
                .purge(&found.key, "deleting a KV store")
                .await?;
            removed.stores += 1;
        }
        Ok(removed)
    }

    async fn get(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
    ) -> Result<Option<Versioned>> {
        kv_rules::check_key(&self.limits, key)?;
        let bucket = self.bucket(tenant, store).await?;
        Ok(self.current(&bucket, key, false).await?.value)
    }

    async fn set(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        kv_rules::check_value(&self.limits, key, &value)?;
        let bucket = self.bucket(tenant, store).await?;
        let escaped = names::escape_key(key);
        let revision = bucket
            .write
            .put(escaped.as_str(), Bytes::from(value))
            .await
            .map_err(|e| self.write_error(&bucket, store, e))?;
        bucket.settle(&escaped, revision).await;
        Ok(())
    }

    async fn delete(&self, tenant: &TenantId, store: &KvStoreName, key: &str) -> Result<()> {
        kv_rules::check_key(&self.limits, key)?;
        let bucket = self.bucket(tenant, store).await?;
        let current = self.current(&bucket, key, true).await?;
        if current.value.is_none() {
            return Ok(());
        }
        let escaped = names::escape_key(key);
        bucket
            .write
            .delete(escaped.as_str())
            .await
            .map_err(|e| bucket.unreachable("deleting a key", e))?;
        bucket.settle(&escaped, current.revision + 1).await;
        Ok(())
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let bucket = self.bucket(tenant, store).await?;
        let escaped = escaped_keys(&self.client, &bucket).await?;
        let mut keys: Vec<String> = escaped
            .iter()
            .filter_map(|k| names::unescape_key(k))
            .filter(|k| prefix.is_none_or(|p| k.starts_with(p)))
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .collect();
        keys.sort();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let cursor = more.then(|| keys.last().cloned()).flatten();
        Ok(KeyPage { keys, cursor })
    }

    async fn increment(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        delta: i64,
    ) -> Result<i64> {
        kv_rules::check_key(&self.limits, key)?;
        let bucket = self.bucket(tenant, store).await?;
        // Writers on this node take turns, so only other nodes' writers race.
        let lock = self.key_lock(&bucket.write.name, key);
        let _turn = lock.lock().await;
        for attempt in 0..MAX_TRIES {
            let current = self.current(&bucket, key, true).await?;
            let value = current.value.as_ref().map(|v| &v.value[..]);
            let next = kv_rules::incremented(key, value, delta)?;
            let escaped = names::escape_key(key);
            let written = bucket
                .write
                .update(
                    escaped.as_str(),
                    Bytes::from(next.to_string()),
                    current.revision,
                )
                .await;
            match written {
                Ok(revision) => {
                    bucket.settle(&escaped, revision).await;
                    return Ok(next);
                }
                Err(e) if lost_race(&e) => {
                    // Another writer got there first: read again and retry, a little later
                    // (and later each time) so the racers spread out.
                    let most = 1000u64 << attempt.min(5);
                    tokio::time::sleep(std::time::Duration::from_micros(fastrand::u64(0..most)))
                        .await;
                }
                Err(e) => return Err(self.write_error(&bucket, store, e)),
            }
        }
        Err(StoreError::Backend(format!(
            "incrementing key '{key}' lost to other writers {MAX_TRIES} times; retry"
        )))
    }

    async fn swap(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        expected: Option<i64>,
        value: Vec<u8>,
    ) -> Result<Result<(), Option<Versioned>>> {
        kv_rules::check_value(&self.limits, key, &value)?;
        let bucket = self.bucket(tenant, store).await?;
        let revision = match expected {
            Some(version) => version as u64,
            None => {
                let current = self.current(&bucket, key, true).await?;
                if current.value.is_some() {
                    return Ok(Err(current.value));
                }
                current.revision
            }
        };
        let escaped = names::escape_key(key);
        let written = bucket
            .write
            .update(escaped.as_str(), Bytes::from(value), revision)
            .await;
        match written {
            Ok(revision) => {
                bucket.settle(&escaped, revision).await;
                Ok(Ok(()))
            }
            Err(e) if lost_race(&e) => Ok(Err(self.current(&bucket, key, true).await?.value)),
            Err(e) => Err(self.write_error(&bucket, store, e)),
        }
    }

    async fn get_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        kv_rules::check_batch(&self.limits, keys.len())?;
        let bucket = self.bucket(tenant, store).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in &keys {
            kv_rules::check_key(&self.limits, key)?;
            out.push(
                self.current(&bucket, key, false)
                    .await?
                    .value
                    .map(|v| v.value),
            );
        }
        Ok(out)
    }

    async fn set_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        kv_rules::check_batch(&self.limits, pairs.len())?;
        for (key, value) in &pairs {
            kv_rules::check_value(&self.limits, key, value)?;
        }
        for (key, value) in pairs {
            self.set(tenant, store, &key, value).await?;
        }
        Ok(())
    }

    async fn delete_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        keys: Vec<String>,
    ) -> Result<()> {
        kv_rules::check_batch(&self.limits, keys.len())?;
        for key in &keys {
            self.delete(tenant, store, key).await?;
        }
        Ok(())
    }
}
