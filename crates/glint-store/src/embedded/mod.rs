//! The embedded backend: one SQLite file in WAL mode under the node's data dir.
//!
//! Every call runs on tokio's blocking pool behind one connection, so callers stay async.
//! `synchronous = FULL` makes a committed deploy survive a crash of the process or the
//! machine; the log writer batches lines so that costs one fsync per batch, not per line.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::*;
use crate::{Artifacts, KeyStore, LogStore, NewVersion, Registry, Result, Secrets, StoreError};

mod kv;
pub use kv::EmbeddedKv;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS functions (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    route TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE UNIQUE INDEX IF NOT EXISTS functions_route ON functions (route);
CREATE TABLE IF NOT EXISTS artifacts (
    tenant TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, sha256)
);
CREATE TABLE IF NOT EXISTS versions (
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, function, version)
);
CREATE TABLE IF NOT EXISTS version_counters (
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (tenant, function)
);
CREATE TABLE IF NOT EXISTS aliases (
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    name TEXT NOT NULL,
    targets TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, function, name)
);
CREATE TABLE IF NOT EXISTS env_vars (
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tenant, function, name)
);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    level_rank INTEGER NOT NULL,
    stream TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_function ON logs (tenant, function, id);
CREATE INDEX IF NOT EXISTS logs_time ON logs (ts_ms);
CREATE TABLE IF NOT EXISTS usage (
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    minute_ms INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    wall_ms INTEGER NOT NULL,
    cpu_us INTEGER NOT NULL,
    memory_kib_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, function, minute_ms, version)
);
CREATE INDEX IF NOT EXISTS logs_execution ON logs (execution_id);
CREATE TABLE IF NOT EXISTS secrets (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
"#;

/// One SQLite file behind one connection, used from async code.
#[derive(Clone)]
struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (or creates) the file in WAL mode with full sync and applies `schema`.
    fn open(path: &Path, schema: &str) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| {
            StoreError::Backend(format!("cannot open database {}: {e}", path.display()))
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(schema)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Checkpoints the WAL into the main file. Called on a clean shutdown.
    fn close(&self) -> Result<()> {
        let conn = self.conn.lock().map_err(|_| poisoned())?;
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
        Ok(())
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| poisoned())?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
    }
}

/// SQLite-backed [`crate::Store`].
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Db,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Db::open(path, SCHEMA)?;
        {
            let conn = db.conn.lock().map_err(|_| poisoned())?;
            migrate(&conn)?;
            conn.execute(
                "INSERT OR IGNORE INTO tenants (id, created_at_ms) VALUES (?1, ?2)",
                params![DEFAULT_TENANT, now_ms()],
            )?;
        }
        Ok(Self { db })
    }

    /// Checkpoints the WAL into the main file. Called on a clean shutdown.
    pub fn close(&self) -> Result<()> {
        self.db.close()
    }

    async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.db.with(f).await
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("the database connection was poisoned by an earlier panic".into())
}

fn not_found_function(name: &FunctionName) -> StoreError {
    StoreError::FunctionNotFound(name.clone())
}

fn function_row(
    conn: &Connection,
    tenant: &TenantId,
    name: &FunctionName,
) -> Result<FunctionRecord> {
    conn.query_row(
        "SELECT route, created_at_ms, updated_at_ms FROM functions WHERE tenant = ?1 AND name = ?2",
        params![tenant.as_str(), name.as_str()],
        |r| {
            Ok(FunctionRecord {
                tenant: tenant.clone(),
                name: name.clone(),
                route: r.get(0)?,
                created_at_ms: r.get(1)?,
                updated_at_ms: r.get(2)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| not_found_function(name))
}

fn version_numbers(conn: &Connection, tenant: &TenantId, name: &FunctionName) -> Result<Vec<u32>> {
    let mut stmt = conn.prepare(
        "SELECT version FROM versions WHERE tenant = ?1 AND function = ?2 ORDER BY version",
    )?;
    let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<u32>>>()?)
}

fn describe_versions(list: &[u32]) -> String {
    match list {
        [] => "it has no versions".to_string(),
        [only] => format!("versions: v{only}"),
        [first, .., last] => format!("versions: v{first}..v{last}"),
    }
}

fn read_function_records(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<FunctionRecord>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(args, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (tenant, name, route, created, updated) = row?;
        out.push(FunctionRecord {
            tenant: tenant.parse()?,
            name: name.parse()?,
            route,
            created_at_ms: created,
            updated_at_ms: updated,
        });
    }
    Ok(out)
}

fn version_from_row(
    tenant: &TenantId,
    name: &FunctionName,
    r: &rusqlite::Row,
) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        tenant: tenant.clone(),
        function: name.clone(),
        version: VersionId(r.get(0)?),
        sha256: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        manifest: r.get(3)?,
        created_at_ms: r.get(4)?,
    })
}

fn parse_targets(json: &str) -> Result<Vec<AliasTarget>> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("alias targets are corrupt: {e}")))
}

fn write_alias(
    conn: &Connection,
    tenant: &TenantId,
    name: &FunctionName,
    alias: &AliasName,
    targets: &[AliasTarget],
) -> Result<AliasRecord> {
    let json = serde_json::to_string(targets)
        .map_err(|e| StoreError::Backend(format!("cannot encode alias targets: {e}")))?;
    let now = now_ms();
    conn.execute(
        "INSERT INTO aliases (tenant, function, name, targets, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant, function, name) DO UPDATE SET targets = excluded.targets, updated_at_ms = excluded.updated_at_ms",
        params![tenant.as_str(), name.as_str(), alias.as_str(), json, now],
    )?;
    Ok(AliasRecord {
        name: alias.clone(),
        targets: targets.to_vec(),
        updated_at_ms: now,
    })
}

#[async_trait]
impl Registry for EmbeddedStore {
    async fn deploy(&self, new: NewVersion) -> Result<VersionRecord> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            let owner: Option<(String, String)> = tx
                .query_row(
                    "SELECT tenant, name FROM functions WHERE route = ?1",
                    params![new.route],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((tenant, name)) = owner
                && (tenant != new.tenant.as_str() || name != new.function.as_str())
            {
                return Err(StoreError::Conflict(format!(
                    "route '{}' is already served by function '{name}'; pick another `route` in glint.toml",
                    new.route
                )));
            }
            tx.execute(
                "INSERT INTO tenants (id, created_at_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![new.tenant.as_str(), now],
            )?;
            tx.execute(
                "INSERT INTO functions (tenant, name, route, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (tenant, name) DO UPDATE SET route = excluded.route, updated_at_ms = excluded.updated_at_ms",
                params![new.tenant.as_str(), new.function.as_str(), new.route, now],
            )?;
            tx.execute(
                "INSERT INTO artifacts (tenant, sha256, size, bytes, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![new.tenant.as_str(), new.sha256, new.component.len() as i64, new.component, now],
            )?;
            // A counter, not max(version)+1, so a deleted version's number is never reused.
            let version: u32 = tx.query_row(
                "INSERT INTO version_counters (tenant, function, last) VALUES (?1, ?2, 1)
                 ON CONFLICT (tenant, function) DO UPDATE SET last = last + 1 RETURNING last",
                params![new.tenant.as_str(), new.function.as_str()],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO versions (tenant, function, version, sha256, size, manifest, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    new.tenant.as_str(),
                    new.function.as_str(),
                    version,
                    new.sha256,
                    new.component.len() as i64,
                    new.manifest,
                    now
                ],
            )?;
            if let Some(alias) = &new.move_alias {
                write_alias(
                    &tx,
                    &new.tenant,
                    &new.function,
                    alias,
                    &[AliasTarget { version: VersionId(version), weight: 1.0 }],
                )?;
            }
            tx.commit()?;
            Ok(VersionRecord {
                tenant: new.tenant,
                function: new.function,
                version: VersionId(version),
                sha256: new.sha256,
                size: new.component.len() as u64,
                manifest: new.manifest,
                created_at_ms: now,
            })
        })
        .await
    }

    async fn all_functions(&self) -> Result<Vec<FunctionRecord>> {
        self.with(|conn| {
            read_function_records(
                conn,
                "SELECT tenant, name, route, created_at_ms, updated_at_ms FROM functions ORDER BY tenant, name",
                &[],
            )
        })
        .await
    }

    async fn functions(&self, tenant: &TenantId) -> Result<Vec<FunctionRecord>> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            read_function_records(
                conn,
                "SELECT tenant, name, route, created_at_ms, updated_at_ms FROM functions WHERE tenant = ?1 ORDER BY name",
                &[&tenant.as_str()],
            )
        })
        .await
    }

    async fn function(&self, tenant: &TenantId, name: &FunctionName) -> Result<FunctionRecord> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| function_row(conn, &tenant, &name))
            .await
    }

    async fn versions(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<VersionRecord>> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let mut stmt = conn.prepare(
                "SELECT version, sha256, size, manifest, created_at_ms FROM versions
                 WHERE tenant = ?1 AND function = ?2 ORDER BY version",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| {
                version_from_row(&tenant, &name, r)
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<VersionRecord> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let found = conn
                .query_row(
                    "SELECT version, sha256, size, manifest, created_at_ms FROM versions
                     WHERE tenant = ?1 AND function = ?2 AND version = ?3",
                    params![tenant.as_str(), name.as_str(), version.0],
                    |r| version_from_row(&tenant, &name, r),
                )
                .optional()?;
            match found {
                Some(v) => Ok(v),
                None => {
                    let list = version_numbers(conn, &tenant, &name)?;
                    Err(StoreError::NotFound(format!(
                        "function '{name}' has no version '{version}'; {}",
                        describe_versions(&list)
                    )))
                }
            }
        })
        .await
    }

    async fn aliases(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<AliasRecord>> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let mut stmt = conn.prepare(
                "SELECT name, targets, updated_at_ms FROM aliases WHERE tenant = ?1 AND function = ?2 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (alias, targets, updated) = row?;
                out.push(AliasRecord {
                    name: alias.parse()?,
                    targets: parse_targets(&targets)?,
                    updated_at_ms: updated,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn set_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
        targets: Vec<AliasTarget>,
    ) -> Result<AliasRecord> {
        let (tenant, name, alias) = (tenant.clone(), name.clone(), alias.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            function_row(&tx, &tenant, &name)?;
            let existing = version_numbers(&tx, &tenant, &name)?;
            for t in &targets {
                if !existing.contains(&t.version.0) {
                    return Err(StoreError::NotFound(format!(
                        "function '{name}' has no version '{}'; {}",
                        t.version,
                        describe_versions(&existing)
                    )));
                }
            }
            let record = write_alias(&tx, &tenant, &name, &alias, &targets)?;
            tx.execute(
                "UPDATE functions SET updated_at_ms = ?3 WHERE tenant = ?1 AND name = ?2",
                params![tenant.as_str(), name.as_str(), now_ms()],
            )?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn delete_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
    ) -> Result<()> {
        let (tenant, name, alias) = (tenant.clone(), name.clone(), alias.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let n = conn.execute(
                "DELETE FROM aliases WHERE tenant = ?1 AND function = ?2 AND name = ?3",
                params![tenant.as_str(), name.as_str(), alias.as_str()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "function '{name}' has no alias '{alias}'"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn delete_function(&self, tenant: &TenantId, name: &FunctionName) -> Result<()> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            function_row(&tx, &tenant, &name)?;
            let (t, n) = (tenant.as_str(), name.as_str());
            for sql in [
                "DELETE FROM aliases WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM versions WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM version_counters WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM env_vars WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM logs WHERE tenant = ?1 AND function = ?2",
                "DELETE FROM functions WHERE tenant = ?1 AND name = ?2",
            ] {
                tx.execute(sql, params![t, n])?;
            }
            delete_unreferenced_artifacts(&tx, &tenant)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<()> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            function_row(&tx, &tenant, &name)?;
            let existing = version_numbers(&tx, &tenant, &name)?;
            if !existing.contains(&version.0) {
                return Err(StoreError::NotFound(format!(
                    "function '{name}' has no version '{version}'; {}",
                    describe_versions(&existing)
                )));
            }
            let mut stmt = tx.prepare(
                "SELECT name, targets FROM aliases WHERE tenant = ?1 AND function = ?2 ORDER BY name",
            )?;
            let aliases = stmt
                .query_map(params![tenant.as_str(), name.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(stmt);
            for (alias, targets) in aliases {
                if parse_targets(&targets)?.iter().any(|t| t.version == version) {
                    return Err(StoreError::Conflict(format!(
                        "alias '{alias}' of function '{name}' points to {version}; move it first \
                         (`glint alias set {name} {alias} ...`) or delete the whole function"
                    )));
                }
            }
            tx.execute(
                "DELETE FROM versions WHERE tenant = ?1 AND function = ?2 AND version = ?3",
                params![tenant.as_str(), name.as_str(), version.0],
            )?;
            delete_unreferenced_artifacts(&tx, &tenant)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn env(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<(String, String)>> {
        let (tenant, name) = (tenant.clone(), name.clone());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let mut stmt = conn.prepare(
                "SELECT name, value FROM env_vars WHERE tenant = ?1 AND function = ?2 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn set_env(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let (tenant, name, key, value) = (
            tenant.clone(),
            name.clone(),
            key.to_string(),
            value.to_string(),
        );
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            conn.execute(
                "INSERT INTO env_vars (tenant, function, name, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, function, name) DO UPDATE SET value = excluded.value",
                params![tenant.as_str(), name.as_str(), key, value],
            )?;
            Ok(())
        })
        .await
    }

    async fn unset_env(&self, tenant: &TenantId, name: &FunctionName, key: &str) -> Result<()> {
        let (tenant, name, key) = (tenant.clone(), name.clone(), key.to_string());
        self.with(move |conn| {
            function_row(conn, &tenant, &name)?;
            let n = conn.execute(
                "DELETE FROM env_vars WHERE tenant = ?1 AND function = ?2 AND name = ?3",
                params![tenant.as_str(), name.as_str(), key],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "function '{name}' has no env var '{key}' set through the API"
                )));
            }
            Ok(())
        })
        .await
    }
}

fn delete_unreferenced_artifacts(conn: &Connection, tenant: &TenantId) -> Result<()> {
    conn.execute(
        "DELETE FROM artifacts WHERE tenant = ?1 AND sha256 NOT IN
         (SELECT sha256 FROM versions WHERE tenant = ?1)",
        params![tenant.as_str()],
    )?;
    Ok(())
}

#[async_trait]
impl Artifacts for EmbeddedStore {
    async fn artifact(&self, tenant: &TenantId, sha256: &str) -> Result<Vec<u8>> {
        let (tenant, sha256) = (tenant.clone(), sha256.to_string());
        self.with(move |conn| {
            conn.query_row(
                "SELECT bytes FROM artifacts WHERE tenant = ?1 AND sha256 = ?2",
                params![tenant.as_str(), sha256],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no component with sha256 {sha256}")))
        })
        .await
    }
}

fn level_rank(level: Level) -> i64 {
    level as i64
}

#[async_trait]
impl LogStore for EmbeddedStore {
    async fn append_logs(&self, lines: Vec<LogRecord>) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.with(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO logs (tenant, function, version, execution_id, ts_ms, level, level_rank, stream, message, node, region)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for l in &lines {
                    stmt.execute(params![
                        l.tenant.as_str(),
                        l.function.as_str(),
                        l.version.0,
                        l.execution_id,
                        l.ts_ms,
                        l.level.as_str(),
                        level_rank(l.level),
                        l.stream,
                        l.message,
                        l.node,
                        l.region
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn logs(&self, tenant: &TenantId, query: LogQuery) -> Result<Vec<LogRecord>> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            let mut sql = String::from(
                "SELECT function, version, execution_id, ts_ms, level, stream, message, node, region FROM logs WHERE tenant = ?1",
            );
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(tenant.to_string())];
            if let Some(f) = &query.function {
                args.push(Box::new(f.to_string()));
                sql.push_str(&format!(" AND function = ?{}", args.len()));
            }
            if let Some(id) = &query.execution_id {
                args.push(Box::new(id.clone()));
                sql.push_str(&format!(" AND execution_id = ?{}", args.len()));
            }
            if let Some(since) = query.since_ms {
                args.push(Box::new(since));
                sql.push_str(&format!(" AND ts_ms >= ?{}", args.len()));
            }
            if let Some(until) = query.until_ms {
                args.push(Box::new(until));
                sql.push_str(&format!(" AND ts_ms < ?{}", args.len()));
            }
            if let Some(v) = query.version {
                args.push(Box::new(v.0));
                sql.push_str(&format!(" AND version = ?{}", args.len()));
            }
            for (column, value) in [("node", &query.node), ("region", &query.region)] {
                if let Some(value) = value {
                    args.push(Box::new(value.clone()));
                    sql.push_str(&format!(" AND {column} = ?{}", args.len()));
                }
            }
            if let Some(level) = query.min_level {
                args.push(Box::new(level_rank(level)));
                sql.push_str(&format!(" AND level_rank >= ?{}", args.len()));
            }
            args.push(Box::new(query.lines.max(1) as i64));
            let order = if query.oldest_first { "ASC" } else { "DESC" };
            sql.push_str(&format!(" ORDER BY id {order} LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
            let rows = stmt.query_map(refs.as_slice(), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (function, version, execution_id, ts_ms, level, stream, message, node, region) =
                    row?;
                out.push(LogRecord {
                    ts_ms,
                    tenant: tenant.clone(),
                    function: function.parse()?,
                    version: VersionId(version),
                    execution_id,
                    level: level.parse()?,
                    stream,
                    message,
                    node,
                    region,
                });
            }
            if !query.oldest_first {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }

    async fn prune_logs(&self, before_ms: i64, max_bytes: u64) -> Result<u64> {
        self.with(move |conn| {
            let mut deleted =
                conn.execute("DELETE FROM logs WHERE ts_ms < ?1", params![before_ms])? as u64;
            // A line's size: its text plus what the other columns and the indexes take.
            const ROW_OVERHEAD: i64 = 160;
            let (count, bytes): (i64, i64) = conn.query_row(
                "SELECT count(*), coalesce(sum(length(message)), 0) FROM logs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let total = bytes + count * ROW_OVERHEAD;
            if total as u64 > max_bytes && count > 0 {
                // Drop the oldest lines, as many as the average line size says are over,
                // plus a tenth, so pruning does not run again at once.
                let average = total / count;
                let over = (total as u64 - max_bytes) as i64;
                let n = (over / average.max(1) + 1 + count / 10).min(count);
                deleted += conn.execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs ORDER BY id LIMIT ?1)",
                    params![n],
                )? as u64;
            }
            Ok(deleted)
        })
        .await
    }
}

/// Brings a database made by an older Glint up to the current schema.
fn migrate(conn: &Connection) -> Result<()> {
    let has_node: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('logs') WHERE name = 'node'")?
        .exists([])?;
    if !has_node {
        conn.execute_batch(
            "ALTER TABLE logs ADD COLUMN node TEXT NOT NULL DEFAULT '';
             ALTER TABLE logs ADD COLUMN region TEXT NOT NULL DEFAULT '';",
        )?;
    }
    Ok(())
}

#[async_trait]
impl crate::UsageStore for EmbeddedStore {
    async fn add_usage(&self, tenant: &TenantId, records: Vec<UsageRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let tenant = tenant.clone();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO usage (tenant, function, version, minute_ms, requests, errors, bytes_in, bytes_out, wall_ms, cpu_us, memory_kib_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (tenant, function, minute_ms, version) DO UPDATE SET
                       requests = requests + ?5, errors = errors + ?6, bytes_in = bytes_in + ?7,
                       bytes_out = bytes_out + ?8, wall_ms = wall_ms + ?9, cpu_us = cpu_us + ?10,
                       memory_kib_ms = memory_kib_ms + ?11",
                )?;
                for r in &records {
                    stmt.execute(params![
                        tenant.as_str(),
                        r.function.as_str(),
                        r.version.0,
                        r.minute_ms,
                        r.requests as i64,
                        r.errors as i64,
                        r.bytes_in as i64,
                        r.bytes_out as i64,
                        r.wall_ms as i64,
                        r.cpu_us as i64,
                        r.memory_kib_ms as i64
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn usage(
        &self,
        tenant: &TenantId,
        function: Option<&FunctionName>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<UsageRecord>> {
        let tenant = tenant.clone();
        let function = function.cloned();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT function, version, minute_ms, requests, errors, bytes_in, bytes_out, wall_ms, cpu_us, memory_kib_ms
                 FROM usage WHERE tenant = ?1 AND (?2 IS NULL OR function = ?2) AND minute_ms >= ?3 AND minute_ms < ?4
                 ORDER BY minute_ms, function, version",
            )?;
            let rows = stmt.query_map(
                params![tenant.as_str(), function.as_ref().map(|f| f.as_str()), start_ms, end_ms],
                |r| {
                    let mut n = [0i64; 7];
                    for (i, slot) in n.iter_mut().enumerate() {
                        *slot = r.get(3 + i)?;
                    }
                    Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, i64>(2)?, n))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (name, version, minute_ms, n) = row?;
                out.push(UsageRecord {
                    function: name.parse()?,
                    version: VersionId(version),
                    minute_ms,
                    requests: n[0] as u64,
                    errors: n[1] as u64,
                    bytes_in: n[2] as u64,
                    bytes_out: n[3] as u64,
                    wall_ms: n[4] as u64,
                    cpu_us: n[5] as u64,
                    memory_kib_ms: n[6] as u64,
                });
            }
            Ok(out)
        })
        .await
    }
}

fn key_from_row(
    r: &rusqlite::Row,
) -> rusqlite::Result<(String, String, String, String, String, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn key_record(row: (String, String, String, String, String, i64)) -> Result<ApiKeyRecord> {
    let (id, tenant, name, role, prefix, created) = row;
    Ok(ApiKeyRecord {
        id,
        tenant: tenant.parse()?,
        name,
        role: role.parse()?,
        prefix,
        created_at_ms: created,
    })
}

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn create_key(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        key_hash: &str,
        prefix: &str,
    ) -> Result<ApiKeyRecord> {
        let record = ApiKeyRecord {
            id: format!("key_{}", &key_hash[..12]),
            tenant: tenant.clone(),
            name: name.to_string(),
            role,
            prefix: prefix.to_string(),
            created_at_ms: now_ms(),
        };
        let key_hash = key_hash.to_string();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO tenants (id, created_at_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![record.tenant.as_str(), record.created_at_ms],
            )?;
            conn.execute(
                "INSERT INTO api_keys (id, tenant, name, role, key_hash, prefix, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key_hash) DO NOTHING",
                params![
                    record.id,
                    record.tenant.as_str(),
                    record.name,
                    record.role.as_str(),
                    key_hash,
                    record.prefix,
                    record.created_at_ms
                ],
            )?;
            Ok(record)
        })
        .await
    }

    async fn keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, tenant, name, role, prefix, created_at_ms FROM api_keys
                 WHERE tenant = ?1 AND revoked_at_ms IS NULL ORDER BY created_at_ms, id",
            )?;
            let rows = stmt.query_map(params![tenant.as_str()], key_from_row)?;
            rows.map(|r| key_record(r?)).collect()
        })
        .await
    }

    async fn all_key_hashes(&self) -> Result<Vec<(String, ApiKeyRecord)>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, tenant, name, role, prefix, created_at_ms, key_hash FROM api_keys
                 WHERE revoked_at_ms IS NULL",
            )?;
            let rows = stmt.query_map([], |r| Ok((key_from_row(r)?, r.get::<_, String>(6)?)))?;
            rows.map(|r| {
                let (row, hash) = r?;
                Ok((hash, key_record(row)?))
            })
            .collect()
        })
        .await
    }

    async fn any_key_made(&self) -> Result<bool> {
        self.with(|conn| {
            Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |r| r.get(0))?)
        })
        .await
    }

    async fn revoke_key(&self, tenant: &TenantId, id: &str) -> Result<()> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.with(move |conn| {
            let n = conn.execute(
                "UPDATE api_keys SET revoked_at_ms = ?3 WHERE tenant = ?1 AND id = ?2 AND revoked_at_ms IS NULL",
                params![tenant.as_str(), id, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "no live API key '{id}'; `glint keys list` shows the keys"
                )));
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Secrets for EmbeddedStore {
    async fn set_secret(&self, tenant: &TenantId, name: &str, sealed: Vec<u8>) -> Result<()> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO secrets (tenant, name, sealed, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, name) DO UPDATE SET sealed = ?3, updated_at_ms = ?4",
                params![tenant.as_str(), name, sealed, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<SecretRecord>> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT name, updated_at_ms FROM secrets WHERE tenant = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![tenant.as_str()], |r| {
                Ok(SecretRecord {
                    name: r.get(0)?,
                    updated_at_ms: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn sealed_secrets(&self, tenant: &TenantId) -> Result<Vec<(String, Vec<u8>)>> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            let mut stmt =
                conn.prepare("SELECT name, sealed FROM secrets WHERE tenant = ?1 ORDER BY name")?;
            let rows = stmt.query_map(params![tenant.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_secret(&self, tenant: &TenantId, name: &str) -> Result<()> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.with(move |conn| {
            let n = conn.execute(
                "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
                params![tenant.as_str(), name],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "secret '{name}' does not exist; `glint secret list` shows the secrets"
                )));
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_version(name: &str, bytes: &[u8]) -> NewVersion {
        NewVersion {
            tenant: TenantId::default_tenant(),
            function: name.parse().unwrap(),
            route: format!("/{name}"),
            component: bytes.to_vec(),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
            manifest: String::new(),
            move_alias: Some(AliasName::latest()),
        }
    }

    #[tokio::test]
    async fn deploys_number_versions_and_move_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("glint.db")).unwrap();
        let t = TenantId::default_tenant();
        let v1 = store.deploy(new_version("hello", b"one")).await.unwrap();
        let v2 = store.deploy(new_version("hello", b"two")).await.unwrap();
        assert_eq!((v1.version, v2.version), (VersionId(1), VersionId(2)));
        let name: FunctionName = "hello".parse().unwrap();
        let aliases = store.aliases(&t, &name).await.unwrap();
        assert_eq!(
            aliases[0].targets,
            vec![AliasTarget {
                version: VersionId(2),
                weight: 1.0
            }]
        );

        let err = store
            .delete_version(&t, &name, VersionId(2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        store.delete_version(&t, &name, VersionId(1)).await.unwrap();
        let v3 = store.deploy(new_version("hello", b"three")).await.unwrap();
        assert_eq!(
            v3.version,
            VersionId(3),
            "a deleted version's number is not reused"
        );

        let err = store
            .deploy(NewVersion {
                route: "/hello".into(),
                ..new_version("other", b"x")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
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
}
