//! Users' KV stores on SQLite: `kv.db`, a file apart from the registry's, so guest
//! traffic never queues behind deploys and log batches.
//!
//! Every write is one transaction with `synchronous = FULL`: durable when it returns. The
//! single connection serialises writers, which makes `increment` and `swap` atomic. Each
//! key keeps a version number that a compare-and-swap checks, and each store keeps its
//! key count and byte total, so the quota check needs no scan.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Db, DbResult, schema};
use crate::model::*;
use crate::{Close, KeyValue, Result, kv_rules};

/// SQLite-backed [`KeyValue`].
#[derive(Clone)]
pub struct EmbeddedKv {
    db: Db,
    limits: KvLimits,
}

impl EmbeddedKv {
    pub fn open(path: &Path, limits: KvLimits) -> Result<Self> {
        Ok(Self {
            db: Db::open(path, schema::KV_SCHEMA, schema::migrate_kv)?,
            limits,
        })
    }

    fn check_key(&self, key: &str) -> Result<()> {
        kv_rules::check_key(&self.limits, key)
    }

    fn check_value(&self, key: &str, value: &[u8]) -> Result<()> {
        kv_rules::check_value(&self.limits, key, value)
    }

    fn check_batch(&self, n: usize) -> Result<()> {
        kv_rules::check_batch(&self.limits, n)
    }
}

fn require_store(conn: &Connection, tenant: &TenantId, store: &KvStoreName) -> DbResult<()> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM kv_stores WHERE tenant = ?1 AND name = ?2",
            params![tenant.as_str(), store.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| kv_rules::no_store(store).into())
}

fn read(
    conn: &Connection,
    tenant: &TenantId,
    store: &KvStoreName,
    key: &str,
) -> DbResult<Option<Versioned>> {
    Ok(conn
        .query_row(
            "SELECT value, version FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3",
            params![tenant.as_str(), store.as_str(), key],
            |r| {
                Ok(Versioned {
                    value: r.get(0)?,
                    version: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Writes one key inside `tx`, keeping the store's totals and checking its quota.
fn write(
    tx: &Transaction<'_>,
    limits: &KvLimits,
    tenant: &TenantId,
    store: &KvStoreName,
    key: &str,
    value: &[u8],
) -> DbResult<()> {
    let old = read(tx, tenant, store, key)?;
    let old_bytes = old
        .as_ref()
        .map_or(0, |o| (key.len() + o.value.len()) as i64);
    let new_bytes = (key.len() + value.len()) as i64;
    let (total,): (i64,) = tx.query_row(
        "SELECT bytes FROM kv_stores WHERE tenant = ?1 AND name = ?2",
        params![tenant.as_str(), store.as_str()],
        |r| Ok((r.get(0)?,)),
    )?;
    let after = total - old_bytes + new_bytes;
    if new_bytes > old_bytes && after as u64 > limits.store_quota_bytes {
        return Err(kv_rules::full(store, after as u64, limits.store_quota_bytes).into());
    }
    // Versions come from one counter per store, never reused: a compare-and-swap handle
    // taken before a key was deleted and written again cannot match the new value.
    let version: i64 = tx.query_row(
        "UPDATE kv_stores SET bytes = bytes + ?3, keys = keys + ?4, last_version = last_version + 1
         WHERE tenant = ?1 AND name = ?2 RETURNING last_version",
        params![
            tenant.as_str(),
            store.as_str(),
            new_bytes - old_bytes,
            i64::from(old.is_none())
        ],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO kv (tenant, store, key, value, version, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant, store, key) DO UPDATE SET value = ?4, version = ?5, updated_at_ms = ?6",
        params![tenant.as_str(), store.as_str(), key, value, version, now_ms()],
    )?;
    Ok(())
}

fn remove(tx: &Transaction<'_>, tenant: &TenantId, store: &KvStoreName, key: &str) -> DbResult<()> {
    let Some(old) = read(tx, tenant, store, key)? else {
        return Ok(());
    };
    tx.execute(
        "DELETE FROM kv WHERE tenant = ?1 AND store = ?2 AND key = ?3",
        params![tenant.as_str(), store.as_str(), key],
    )?;
    tx.execute(
        "UPDATE kv_stores SET bytes = bytes - ?3, keys = keys - 1 WHERE tenant = ?1 AND name = ?2",
        params![
            tenant.as_str(),
            store.as_str(),
            (key.len() + old.value.len()) as i64
        ],
    )?;
    Ok(())
}

#[async_trait]
impl Close for EmbeddedKv {
    async fn close(&self) -> Result<()> {
        self.db.close().await
    }
}

#[async_trait]
impl KeyValue for EmbeddedKv {
    fn limits(&self) -> KvLimits {
        self.limits
    }

    async fn create_store(&self, tenant: &TenantId, store: &KvStoreName) -> Result<()> {
        let (tenant, store) = (tenant.clone(), store.clone());
        self.db
            .with(move |conn| {
                // A store made again after a delete starts its versions past any handle
                // taken before: at the clock, in microseconds.
                conn.execute(
                    "INSERT OR IGNORE INTO kv_stores (tenant, name, created_at_ms, last_version)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        tenant.as_str(),
                        store.as_str(),
                        now_ms(),
                        now_ms().saturating_mul(1000)
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn stores(&self, tenant: &TenantId) -> Result<Vec<KvStoreRecord>> {
        let tenant = tenant.clone();
        self.db
            .with(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT name, keys, bytes, created_at_ms FROM kv_stores WHERE tenant = ?1 ORDER BY name",
                )?;
                let rows = stmt.query_map(params![tenant.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (name, keys, bytes, created_at_ms) = row?;
                    out.push(KvStoreRecord {
                        name: name.parse()?,
                        keys,
                        bytes,
                        created_at_ms,
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn delete_stores(&self, tenant: &TenantId) -> Result<KvRemoved> {
        let tenant = tenant.clone();
        self.db
            .with(move |conn| {
                let tx = conn.transaction()?;
                let (stores, keys, bytes): (u64, u64, u64) = tx.query_row(
                    "SELECT COUNT(*), COALESCE(SUM(keys), 0), COALESCE(SUM(bytes), 0)
                     FROM kv_stores WHERE tenant = ?1",
                    params![tenant.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                tx.execute("DELETE FROM kv WHERE tenant = ?1", params![tenant.as_str()])?;
                tx.execute(
                    "DELETE FROM kv_stores WHERE tenant = ?1",
                    params![tenant.as_str()],
                )?;
                tx.commit()?;
                Ok(KvRemoved {
                    stores,
                    keys,
                    bytes,
                })
            })
            .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
    ) -> Result<Option<Versioned>> {
        self.check_key(key)?;
        let (tenant, store, key) = (tenant.clone(), store.clone(), key.to_string());
        self.db
            .with(move |conn| {
                require_store(conn, &tenant, &store)?;
                read(conn, &tenant, &store, &key)
            })
            .await
    }

    async fn set(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        self.check_value(key, &value)?;
        let (tenant, store, key, limits) =
            (tenant.clone(), store.clone(), key.to_string(), self.limits);
        self.db
            .with(move |conn| {
                let tx = conn.transaction()?;
                require_store(&tx, &tenant, &store)?;
                write(&tx, &limits, &tenant, &store, &key, &value)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn delete(&self, tenant: &TenantId, store: &KvStoreName, key: &str) -> Result<()> {
        self.check_key(key)?;
        let (tenant, store, key) = (tenant.clone(), store.clone(), key.to_string());
        self.db
            .with(move |conn| {
                let tx = conn.transaction()?;
                require_store(&tx, &tenant, &store)?;
                remove(&tx, &tenant, &store, &key)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let (tenant, store) = (tenant.clone(), store.clone());
        let prefix = prefix.unwrap_or("").to_string();
        // Start at the later of the cursor and the prefix; keys sort bytewise.
        let start = match after {
            Some(a) if a >= prefix.as_str() => a.to_string(),
            _ => String::new(),
        };
        let limit = limit.clamp(1, 10_000);
        self.db
            .with(move |conn| {
                require_store(conn, &tenant, &store)?;
                let mut stmt = conn.prepare(
                    "SELECT key FROM kv WHERE tenant = ?1 AND store = ?2 AND key > ?3 AND key >= ?4
                     ORDER BY key LIMIT ?5",
                )?;
                let rows = stmt.query_map(
                    params![
                        tenant.as_str(),
                        store.as_str(),
                        start,
                        prefix,
                        (limit + 1) as i64
                    ],
                    |r| r.get::<_, String>(0),
                )?;
                let mut keys = Vec::new();
                let mut more = false;
                for key in rows {
                    let key = key?;
                    if !key.starts_with(&prefix) {
                        break;
                    }
                    if keys.len() == limit {
                        more = true;
                        break;
                    }
                    keys.push(key);
                }
                let cursor = if more { keys.last().cloned() } else { None };
                Ok(KeyPage { keys, cursor })
            })
            .await
    }

    async fn increment(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        delta: i64,
    ) -> Result<i64> {
        self.check_key(key)?;
        let (tenant, store, key, limits) =
            (tenant.clone(), store.clone(), key.to_string(), self.limits);
        self.db
            .with(move |conn| {
                let tx = conn.transaction()?;
                require_store(&tx, &tenant, &store)?;
                let current = read(&tx, &tenant, &store, &key)?;
                let next =
                    kv_rules::incremented(&key, current.as_ref().map(|v| &v.value[..]), delta)?;
                write(
                    &tx,
                    &limits,
                    &tenant,
                    &store,
                    &key,
                    next.to_string().as_bytes(),
                )?;
                tx.commit()?;
                Ok(next)
            })
            .await
    }

    async fn swap(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        key: &str,
        expected: Option<i64>,
        value: Vec<u8>,
    ) -> Result<Result<(), Option<Versioned>>> {
        self.check_value(key, &value)?;
        let (tenant, store, key, limits) =
            (tenant.clone(), store.clone(), key.to_string(), self.limits);
        self.db
            .with(move |conn| {
                let tx = conn.transaction()?;
                require_store(&tx, &tenant, &store)?;
                let current = read(&tx, &tenant, &store, &key)?;
                if current.as_ref().map(|c| c.version) != expected {
                    return Ok(Err(current));
                }
                write(&tx, &limits, &tenant, &store, &key, &value)?;
                tx.commit()?;
                Ok(Ok(()))
            })
            .await
    }

    async fn get_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.check_batch(keys.len())?;
        for key in &keys {
            self.check_key(key)?;
        }
        let (tenant, store) = (tenant.clone(), store.clone());
        self.db
            .with(move |conn| {
                require_store(conn, &tenant, &store)?;
                keys.iter()
                    .map(|k| Ok(read(conn, &tenant, &store, k)?.map(|v| v.value)))
                    .collect()
            })
            .await
    }

    async fn set_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        self.check_batch(pairs.len())?;
        for (key, value) in &pairs {
            self.check_value(key, value)?;
        }
        let (tenant, store, limits) = (tenant.clone(), store.clone(), self.limits);
        self.db
            .with(move |conn| {
                let tx = conn.transaction()?;
                require_store(&tx, &tenant, &store)?;
                for (key, value) in &pairs {
                    write(&tx, &limits, &tenant, &store, key, value)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn delete_many(
        &self,
        tenant: &TenantId,
        store: &KvStoreName,
        keys: Vec<String>,
    ) -> Result<()> {
        self.check_batch(keys.len())?;
        for key in &keys {
            self.check_key(key)?;
        }
        let (tenant, store) = (tenant.clone(), store.clone());
        self.db
            .with(move |conn| {
                let tx = conn.transaction()?;
                require_store(&tx, &tenant, &store)?;
                for key in &keys {
                    remove(&tx, &tenant, &store, key)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    fn setup(limits: KvLimits) -> (tempfile::TempDir, EmbeddedKv, TenantId, KvStoreName) {
        let dir = tempfile::tempdir().unwrap();
        let kv = EmbeddedKv::open(&dir.path().join("kv.db"), limits).unwrap();
        (dir, kv, "default".parse().unwrap(), "s".parse().unwrap())
    }

    #[tokio::test]
    async fn quota_counts_keys_and_values_and_frees_on_delete() {
        let limits = KvLimits {
            store_quota_bytes: 20,
            ..KvLimits::default()
        };
        let (_dir, kv, t, s) = setup(limits);
        kv.create_store(&t, &s).await.unwrap();
        kv.set(&t, &s, "a", vec![0; 9]).await.unwrap(); // 10 bytes
        kv.set(&t, &s, "b", vec![0; 9]).await.unwrap(); // 20 bytes
        let full = kv.set(&t, &s, "c", vec![0; 1]).await.unwrap_err();
        assert!(matches!(full, StoreError::Limit(_)), "{full}");
        // Shrinking a value is always allowed, and frees room.
        kv.set(&t, &s, "a", vec![0; 1]).await.unwrap();
        kv.set(&t, &s, "c", vec![0; 1]).await.unwrap();
        kv.delete(&t, &s, "b").await.unwrap();
        let stores = kv.stores(&t).await.unwrap();
        assert_eq!((stores[0].keys, stores[0].bytes), (2, 4));
    }

    #[tokio::test]
    async fn swap_checks_the_version_and_returns_the_current_value() {
        let (_dir, kv, t, s) = setup(KvLimits::default());
        kv.create_store(&t, &s).await.unwrap();
        assert_eq!(
            kv.swap(&t, &s, "k", None, b"1".to_vec()).await.unwrap(),
            Ok(())
        );
        let lost = kv.swap(&t, &s, "k", None, b"2".to_vec()).await.unwrap();
        let current = lost.unwrap_err().unwrap();
        assert_eq!(current.value, b"1");
        assert_eq!(
            kv.swap(&t, &s, "k", Some(current.version), b"2".to_vec())
                .await
                .unwrap(),
            Ok(())
        );
        assert_eq!(kv.get(&t, &s, "k").await.unwrap().unwrap().value, b"2");
    }

    #[tokio::test]
    async fn a_handle_from_before_a_delete_does_not_match_the_key_written_again() {
        let (dir, kv, t, s) = setup(KvLimits::default());
        kv.create_store(&t, &s).await.unwrap();
        kv.set(&t, &s, "k", b"old".to_vec()).await.unwrap();
        let stale = kv.get(&t, &s, "k").await.unwrap().unwrap().version;
        kv.delete(&t, &s, "k").await.unwrap();
        kv.set(&t, &s, "k", b"new".to_vec()).await.unwrap();
        let lost = kv
            .swap(&t, &s, "k", Some(stale), b"x".to_vec())
            .await
            .unwrap();
        assert_eq!(lost.unwrap_err().unwrap().value, b"new");
        // Across a reopen too: the counter is stored.
        drop(kv);
        let kv = EmbeddedKv::open(&dir.path().join("kv.db"), KvLimits::default()).unwrap();
        let before = kv.get(&t, &s, "k").await.unwrap().unwrap().version;
        kv.delete(&t, &s, "k").await.unwrap();
        kv.set(&t, &s, "k", b"again".to_vec()).await.unwrap();
        assert!(kv.get(&t, &s, "k").await.unwrap().unwrap().version > before);
    }

    #[tokio::test]
    async fn pages_follow_the_cursor_within_a_prefix() {
        let (_dir, kv, t, s) = setup(KvLimits::default());
        kv.create_store(&t, &s).await.unwrap();
        for k in ["a1", "a2", "a3", "b1"] {
            kv.set(&t, &s, k, b"x".to_vec()).await.unwrap();
        }
        let p1 = kv.list_keys(&t, &s, Some("a"), None, 2).await.unwrap();
        assert_eq!(p1.keys, ["a1", "a2"]);
        let p2 = kv
            .list_keys(&t, &s, Some("a"), p1.cursor.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!((p2.keys, p2.cursor), (vec!["a3".to_string()], None));
        let missing: KvStoreName = "nope".parse().unwrap();
        assert!(matches!(
            kv.get(&t, &missing, "k").await.unwrap_err(),
            StoreError::NotFound(_)
        ));
    }
}
