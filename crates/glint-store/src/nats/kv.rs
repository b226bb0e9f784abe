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

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{backend, lost_race, names};
use crate::model::*;
use crate::{Close, KeyValue, Result, StoreError, kv_rules};

/// How often a revision-checked update is tried again when another writer got there first.
const MAX_TRIES: usize = 200;

/// Every live key of a bucket, escaped, read again while the cluster is busy (a loaded
/// cluster can time out the consumer that lists them; CI saw it).
async fn escaped_keys(bucket: &kv::Store) -> Result<Vec<String>> {
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

/// Users' KV stores on one NATS cluster.
pub struct NatsKv {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Prefixes every bucket, so deployments (and tests) can share one NATS.
    ns: String,
    replicas: usize,
    limits: KvLimits,
    /// The registry bucket, which lists each tenant's stores (`kvs.<tenant>.<store>`).
    registry: kv::Store,
    buckets: Mutex<HashMap<String, kv::Store>>,
    /// One lock per (bucket, key) being incremented on this node now.
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
        registry: kv::Store,
        ns: &str,
        replicas: usize,
        limits: KvLimits,
    ) -> Self {
        Self {
            js: jetstream::new(client.clone()),
            client,
            registry,
            ns: ns.to_string(),
            replicas,
            limits,
            buckets: Mutex::default(),
            key_locks: Mutex::default(),
        }
    }

    async fn bucket(&self, tenant: &TenantId, store: &KvStoreName) -> Result<kv::Store> {
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
        let opened = self
            .js
            .get_key_value(&name)
            .await
            .map_err(|_| kv_rules::no_store(store))?;
        self.buckets.lock().unwrap().insert(name, opened.clone());
        Ok(opened)
    }

    /// The lock of one key on this node; locks nobody holds are dropped.
    fn key_lock(&self, bucket: &str, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.key_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(format!("{bucket}/{key}")).or_default().clone()
    }

    async fn current(&self, bucket: &kv::Store, key: &str) -> Result<Current> {
        let escaped = names::escape_key(key);
        let entry = super::patiently(|| async {
            bucket
                .entry(escaped.as_str())
                .await
                .map_err(|e| backend("reading a key", e))
        })
        .await?;
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
    fn write_error(&self, store: &KvStoreName, e: impl std::fmt::Display) -> StoreError {
        let text = e.to_string();
        if text.contains("maximum bytes exceeded") || text.contains("insufficient resources") {
            return StoreError::Limit(format!(
                "KV store '{store}' is full: this write would take it over its quota of {} bytes; \
                 delete keys to make room",
                self.limits.store_quota_bytes
            ));
        }
        backend("writing a key", text)
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
        let listed = super::patiently(|| async {
            self.registry
                .entry(key.as_str())
                .await
                .map_err(|e| backend("reading a KV store's record", e))
        })
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
            ..Default::default()
        };
        super::patiently(|| async {
            match self.js.create_key_value(config.clone()).await {
                Ok(_) => Ok(()),
                // Another node made it first, or it was made before a crash.
                Err(_) if self.bucket(tenant, store).await.is_ok() => Ok(()),
                Err(e) => Err(backend("creating a KV store", e)),
            }
        })
        .await?;
        let record = super::to_json(
            "a KV store's record",
            &StoreListing {
                created_at_ms: now_ms(),
            },
        )?;
        super::until_sent(|| async {
            match self.registry.create(key.as_str(), record.clone()).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(backend("listing a KV store", e)),
            }
        })
        .await
    }

    async fn stores(&self, tenant: &TenantId) -> Result<Vec<KvStoreRecord>> {
        let listed =
            super::scan::entries(&self.client, &self.registry, &format!("kvs.{tenant}.*")).await?;
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
            let info = bucket
                .status()
                .await
                .map_err(|e| backend("reading a KV store", e))?;
            let keys = escaped_keys(&bucket).await?.len() as u64;
            out.push(KvStoreRecord {
                name,
                keys,
                // The server's measure: the stored messages with their subjects.
                bytes: info.info.state.bytes,
                created_at_ms: listing.created_at_ms,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn get(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
    ) -> Result<Option<Versioned>> {
        kv_rules::check_key(&self.limits, key)?;
        let bucket = self.bucket(tenant, store).await?;
        Ok(self.current(&bucket, key).await?.value)
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
        bucket
            .put(names::escape_key(key), Bytes::from(value))
            .await
            .map(drop)
            .map_err(|e| self.write_error(store, e))
    }

    async fn delete(&self, tenant: &TenantId, store: &KvStoreName, key: &str) -> Result<()> {
        kv_rules::check_key(&self.limits, key)?;
        let bucket = self.bucket(tenant, store).await?;
        if self.current(&bucket, key).await?.value.is_none() {
            return Ok(());
        }
        bucket
            .delete(names::escape_key(key))
            .await
            .map_err(|e| backend("deleting a key", e))
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
        let escaped = escaped_keys(&bucket).await?;
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
        let lock = self.key_lock(&bucket.name, key);
        let _turn = lock.lock().await;
        for attempt in 0..MAX_TRIES {
            let current = self.current(&bucket, key).await?;
            let value = current.value.as_ref().map(|v| &v.value[..]);
            let next = kv_rules::incremented(key, value, delta)?;
            let written = bucket
                .update(
                    names::escape_key(key),
                    Bytes::from(next.to_string()),
                    current.revision,
                )
                .await;
            match written {
                Ok(_) => return Ok(next),
                Err(e) if lost_race(&e) => {
                    // Another writer got there first: read again and retry, a little later
                    // (and later each time) so the racers spread out.
                    let most = 1000u64 << attempt.min(5);
                    tokio::time::sleep(std::time::Duration::from_micros(fastrand::u64(0..most)))
                        .await;
                }
                Err(e) => return Err(self.write_error(store, e)),
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
                let current = self.current(&bucket, key).await?;
                if current.value.is_some() {
                    return Ok(Err(current.value));
                }
                current.revision
            }
        };
        let written = bucket
            .update(names::escape_key(key), Bytes::from(value), revision)
            .await;
        match written {
            Ok(_) => Ok(Ok(())),
            Err(e) if lost_race(&e) => Ok(Err(self.current(&bucket, key).await?.value)),
            Err(e) => Err(self.write_error(store, e)),
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
            out.push(self.current(&bucket, key).await?.value.map(|v| v.value));
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
