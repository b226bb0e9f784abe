//! Opening a node's storage from a store URL: the one place that names a backend. A second
//! backend is a module that implements the traits, plus one arm in [`Stores::open`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::embedded::{EmbeddedKv, EmbeddedStore};
use crate::{
    Artifacts, KeyStore, KeyValue, KvLimits, LogStore, Registry, Result, Secrets, Store,
    StoreError, UsageStore,
};

/// Where a node keeps its data, as `glint serve --store` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:DIR`: `glint.db` (records) and `kv.db` (users' KV) in DIR.
    Sqlite(PathBuf),
    /// `nats://HOST:PORT[,...]`: NATS JetStream, shared by many nodes.
    #[cfg(feature = "nats")]
    Nats(crate::nats::NatsUrl),
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self> {
        let invalid = |message: String| Err(StoreError::Invalid(message));
        #[cfg(feature = "nats")]
        if let Some(nats) = crate::nats::NatsUrl::parse(url) {
            return nats.map(StoreUrl::Nats);
        }
        match url.split_once(':') {
            Some(("sqlite", "")) => invalid(format!(
                "store URL '{url}' names no directory; use sqlite:DIR, e.g. sqlite:/var/lib/glint"
            )),
            // `sqlite://x` would quietly mean the directory `//x`.
            Some(("sqlite", dir)) if dir.starts_with("//") => invalid(format!(
                "store URL '{url}': put the directory right after 'sqlite:', without '//' \
                 (sqlite:DIR, e.g. sqlite:/var/lib/glint)"
            )),
            Some(("sqlite", dir)) => Ok(StoreUrl::Sqlite(PathBuf::from(dir))),
            _ => invalid(format!(
                "unknown store URL '{url}': use sqlite:DIR (one node) or nats://HOST:PORT[,HOST:PORT...] (many nodes)"
            )),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(dir) => write!(f, "sqlite:{}", dir.display()),
            #[cfg(feature = "nats")]
            StoreUrl::Nats(url) => url.fmt(f),
        }
    }
}

/// A node's storage, opened from one [`StoreUrl`]: a trait object for each kind of record.
#[derive(Clone)]
pub struct Stores {
    pub registry: Arc<dyn Registry>,
    pub artifacts: Arc<dyn Artifacts>,
    pub logs: Arc<dyn LogStore>,
    pub usage: Arc<dyn UsageStore>,
    pub keys: Arc<dyn KeyStore>,
    pub secrets: Arc<dyn Secrets>,
    /// Users' KV stores.
    pub kv: Arc<dyn KeyValue>,
    /// The six record stores above as one object, for the node's state, which uses them
    /// all.
    pub records: Arc<dyn Store>,
}

impl Stores {
    /// Opens (or creates) the storage `url` names, and brings it up to date.
    pub async fn open(url: &StoreUrl, kv_limits: KvLimits) -> Result<Stores> {
        match url {
            StoreUrl::Sqlite(dir) => {
                let dir = dir.clone();
                let (records, kv) = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        StoreError::Backend(format!(
                            "cannot create the store's directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                    let records = EmbeddedStore::open(&dir.join("glint.db"))?;
                    let kv = EmbeddedKv::open(&dir.join("kv.db"), kv_limits)?;
                    Ok::<_, StoreError>((records, kv))
                })
                .await
                .map_err(|e| StoreError::Backend(format!("opening the store failed: {e}")))??;
                Ok(Stores::of(Arc::new(records), Arc::new(kv)))
            }
            #[cfg(feature = "nats")]
            StoreUrl::Nats(url) => {
                let (records, kv) = crate::nats::NatsStore::open(url, kv_limits).await?;
                Ok(Stores::of(Arc::new(records), Arc::new(kv)))
            }
        }
    }

    /// Every record trait from the one backend object that implements them all.
    fn of<S: Store + 'static>(records: Arc<S>, kv: Arc<dyn KeyValue>) -> Stores {
        Stores {
            registry: records.clone(),
            artifacts: records.clone(),
            logs: records.clone(),
            usage: records.clone(),
            keys: records.clone(),
            secrets: records.clone(),
            kv,
            records,
        }
    }

    /// Makes everything written durable in the backends' own form, once, on a clean
    /// shutdown after the last write.
    pub async fn close(&self) -> Result<()> {
        self.records.close().await?;
        self.kv.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_a_backend_or_say_which_ones_exist() {
        assert_eq!(
            "sqlite:/var/lib/glint".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/var/lib/glint".into())
        );
        assert_eq!(
            "sqlite:data".parse::<StoreUrl>().unwrap().to_string(),
            "sqlite:data"
        );
        let err = "redis://127.0.0.1:6379".parse::<StoreUrl>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown store URL 'redis://127.0.0.1:6379': use sqlite:DIR (one node) or nats://HOST:PORT[,HOST:PORT...] (many nodes)"
        );
        for bad in ["", "/var/lib/glint", "sqlite:", "sqlite://data", "SQLITE:x"] {
            let err = bad.parse::<StoreUrl>().unwrap_err().to_string();
            assert!(err.contains("sqlite:DIR"), "{bad:?}: {err}");
        }
    }

    #[tokio::test]
    async fn a_sqlite_url_opens_every_store_in_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let url = StoreUrl::Sqlite(dir.path().join("nested"));
        let stores = Stores::open(&url, KvLimits::default()).await.unwrap();
        let tenant = crate::TenantId::default_tenant();
        let store: crate::KvStoreName = "counters".parse().unwrap();
        stores.kv.create_store(&tenant, &store).await.unwrap();
        assert!(stores.keys.keys(&tenant).await.unwrap().is_empty());
        stores.close().await.unwrap();
        for file in ["glint.db", "kv.db"] {
            assert!(dir.path().join("nested").join(file).exists(), "{file}");
        }
    }
}
