//! The embedded backend (`sqlite:DIR`): SQLite files in WAL mode in DIR, `glint.db` for
//! the records and `kv.db` for users' KV. Here: opening a file, and the connection that
//! every trait's file (registry.rs, logs.rs, kv.rs, ...) runs its statements through.
//!
//! Every call runs on tokio's blocking pool behind one connection, so callers stay async.
//! `synchronous = FULL` makes a committed deploy survive a crash of the process or the
//! machine; the log writer batches lines so that costs one fsync per batch, not per line.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;

use crate::{Close, Result, StoreError};

mod artifacts;
mod changes;
mod keys;
mod kv;
mod logs;
mod registry;
mod schema;
mod secrets;
mod tenants;
mod usage;

pub use kv::EmbeddedKv;

/// What a call inside this backend fails with: SQLite's error, or one of the store's
/// own. [`Db::with`] turns it into a [`StoreError`] where a trait method returns, so no
/// rusqlite type reaches the traits or their callers.
enum DbError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

type DbResult<T> = std::result::Result<T, DbError>;

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<StoreError> for DbError {
    fn from(e: StoreError) -> Self {
        DbError::Store(e)
    }
}

impl DbError {
    fn into_store(self) -> StoreError {
        match self {
            DbError::Sqlite(e) => StoreError::Backend(e.to_string()),
            DbError::Store(e) => e,
        }
    }
}

/// One SQLite file behind one connection, used from async code.
#[derive(Clone)]
struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (or creates) the file in WAL mode with full sync, applies `schema`, then
    /// `migrate`, which brings a file an older Glint made up to it.
    fn open(path: &Path, schema: &str, migrate: fn(&Connection) -> DbResult<()>) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| {
            StoreError::Backend(format!("cannot open database {}: {e}", path.display()))
        })?;
        let prepare = || -> DbResult<()> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.execute_batch(schema)?;
            migrate(&conn)
        };
        prepare().map_err(DbError::into_store)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Checkpoints the WAL into the main file. Called on a clean shutdown.
    async fn close(&self) -> Result<()> {
        self.with(|conn| {
            conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
            Ok(())
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| poisoned())?;
            f(&mut conn).map_err(DbError::into_store)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
    }
}

/// SQLite-backed [`crate::Store`].
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Db,
    changes: tokio::sync::broadcast::Sender<crate::Change>,
    members: Arc<Mutex<changes::Membership>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            db: Db::open(path, schema::SCHEMA, schema::migrate)?,
            changes: tokio::sync::broadcast::channel(1024).0,
            members: Arc::default(),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    {
        self.db.with(f).await
    }
}

#[async_trait]
impl Close for EmbeddedStore {
    async fn close(&self) -> Result<()> {
        self.db.close().await
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("the database connection was poisoned by an earlier panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::{Artifacts, NewVersion, Registry};

    pub(super) fn new_version(name: &str, bytes: &[u8]) -> NewVersion {
        NewVersion {
            tenant: TenantId::default_tenant(),
            function: name.parse().unwrap(),
            route: format!("/{name}"),
            component: bytes.to_vec(),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
            manifest: String::new(),
            world: "wasi-0.2".into(),
            move_alias: Some(AliasName::latest()),
        }
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glint.db");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            store.deploy(new_version("keep", b"bytes")).await.unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let t = TenantId::default_tenant();
        let v = store
            .version(&t, &"keep".parse().unwrap(), VersionId(1))
            .await
            .unwrap();
        assert_eq!(store.artifact(&t, &v.sha256).await.unwrap(), b"bytes");
    }

    /// A file from before tenants had their own routes (one route index across the
    /// node, tenants without a status) opens: two tenants then hold the same route, and
    /// a tenant nobody made gets no deploy.
    #[tokio::test]
    async fn a_file_from_before_tenant_routes_gives_each_tenant_its_own() {
        use crate::Tenants;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glint.db");
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE tenants (id TEXT PRIMARY KEY, created_at_ms INTEGER NOT NULL);
                 CREATE TABLE functions (tenant TEXT NOT NULL, name TEXT NOT NULL,
                    route TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
                    updated_at_ms INTEGER NOT NULL, PRIMARY KEY (tenant, name));
                 CREATE UNIQUE INDEX functions_route ON functions (route);",
            )
            .unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        store.create_tenant(&acme).await.unwrap();
        store.deploy(new_version("api", b"one")).await.unwrap();
        store
            .deploy(NewVersion {
                tenant: acme.clone(),
                ..new_version("api", b"two")
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .function(&acme, &"api".parse().unwrap())
                .await
                .unwrap()
                .route,
            "/api"
        );
        // Within one tenant a route is still one function's.
        let taken = store
            .deploy(NewVersion {
                route: "/api".into(),
                ..new_version("other", b"three")
            })
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        let nobody = store
            .deploy(NewVersion {
                tenant: "nobody".parse().unwrap(),
                ..new_version("api", b"four")
            })
            .await;
        assert!(matches!(nobody, Err(StoreError::NotFound(_))), "{nobody:?}");
    }

    /// A file from before versions recorded their world opens, and its versions read as
    /// WASI 0.2, the only world accepted then; a new version records its own.
    #[tokio::test]
    async fn versions_from_before_worlds_read_as_wasi_02() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glint.db");
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE functions (tenant TEXT NOT NULL, name TEXT NOT NULL,
                    route TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
                    updated_at_ms INTEGER NOT NULL, PRIMARY KEY (tenant, name));
                 INSERT INTO functions VALUES ('default', 'old', '/old', 0, 0);
                 CREATE TABLE versions (tenant TEXT NOT NULL, function TEXT NOT NULL,
                    version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                    manifest TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant, function, version));
                 INSERT INTO versions VALUES ('default', 'old', 1, 'ab', 2, '', 0);",
            )
            .unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let t = TenantId::default_tenant();
        let old = store
            .version(&t, &"old".parse().unwrap(), VersionId(1))
            .await
            .unwrap();
        assert_eq!(old.world, "wasi-0.2");
        let new = store
            .deploy(NewVersion {
                world: "wasi-0.3".into(),
                ..new_version("new", b"bytes")
            })
            .await
            .unwrap();
        assert_eq!(new.world, "wasi-0.3");
        let read = store
            .version(&t, &"new".parse().unwrap(), new.version)
            .await
            .unwrap();
        assert_eq!(read.world, "wasi-0.3");
    }
}
