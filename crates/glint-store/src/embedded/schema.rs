//! The tables of `glint.db` and `kv.db`, and the migrations that bring a file made by an
//! older Glint up to them. A new column goes in the schema and, for existing files, in
//! the migration next to it.

use rusqlite::{Connection, params};

use super::DbResult;
use crate::model::{DEFAULT_TENANT, now_ms};

/// The registry, artifacts, logs, usage, keys and secrets: `glint.db`.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    quotas TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS functions (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    route TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE UNIQUE INDEX IF NOT EXISTS functions_tenant_route ON functions (tenant, route);
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
    world TEXT NOT NULL DEFAULT 'wasi-0.2',
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

/// Brings a database made by an older Glint up to the current schema, and makes sure the
/// default tenant exists.
pub(super) fn migrate(conn: &Connection) -> DbResult<()> {
    let has_node: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('logs') WHERE name = 'node'")?
        .exists([])?;
    if !has_node {
        conn.execute_batch(
            "ALTER TABLE logs ADD COLUMN node TEXT NOT NULL DEFAULT '';
             ALTER TABLE logs ADD COLUMN region TEXT NOT NULL DEFAULT '';",
        )?;
    }
    let has_world: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('versions') WHERE name = 'world'")?
        .exists([])?;
    if !has_world {
        // Versions from before WASI 0.3 was accepted all speak 0.2.
        conn.execute_batch(
            "ALTER TABLE versions ADD COLUMN world TEXT NOT NULL DEFAULT 'wasi-0.2';",
        )?;
    }
    // Routes were unique across the node before each tenant had its own.
    conn.execute_batch("DROP INDEX IF EXISTS functions_route;")?;
    let has_status: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('tenants') WHERE name = 'status'")?
        .exists([])?;
    if !has_status {
        conn.execute_batch(
            "ALTER TABLE tenants ADD COLUMN status TEXT NOT NULL DEFAULT 'active';",
        )?;
    }
    let has_quotas: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('tenants') WHERE name = 'quotas'")?
        .exists([])?;
    if !has_quotas {
        conn.execute_batch("ALTER TABLE tenants ADD COLUMN quotas TEXT NOT NULL DEFAULT '{}';")?;
    }
    conn.execute(
        "INSERT OR IGNORE INTO tenants (id, created_at_ms) VALUES (?1, ?2)",
        params![DEFAULT_TENANT, now_ms()],
    )?;
    Ok(())
}

/// Users' KV stores: `kv.db`, a file apart.
pub(super) const KV_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kv_stores (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    keys INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    last_version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS kv (
    tenant TEXT NOT NULL,
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, store, key)
) WITHOUT ROWID;
"#;

/// Files from before `last_version`: each store's counter starts above its keys' versions.
pub(super) fn migrate_kv(conn: &Connection) -> DbResult<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('kv_stores') WHERE name = 'last_version')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE kv_stores ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;
             UPDATE kv_stores SET last_version = (SELECT COALESCE(MAX(version), 0) FROM kv
                 WHERE kv.tenant = kv_stores.tenant AND kv.store = kv_stores.name);",
        )?;
    }
    Ok(())
}
