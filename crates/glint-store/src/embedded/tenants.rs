//! [`Tenants`] on SQLite: the `tenants` table.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{DbResult, EmbeddedStore};
use crate::Change;
use crate::model::*;
use crate::{Result, StoreError, Tenants};

/// The columns [`tenant_record`] reads.
const COLUMNS: &str = "id, status, created_at_ms, quotas";

type Row = (String, String, i64, String);

fn tenant_record(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn parse((id, status, created_at_ms, quotas): Row) -> DbResult<TenantRecord> {
    Ok(TenantRecord {
        id: id.parse()?,
        status: status.parse()?,
        created_at_ms,
        quotas: serde_json::from_str(&quotas).map_err(|e| {
            StoreError::Backend(format!("tenant '{id}' has quotas that do not parse: {e}"))
        })?,
    })
}

/// Refuses a write for a tenant that does not exist or is being deleted: tenants are
/// made only by the operator, and a deploy racing a deletion must not bring one back.
pub(super) fn require_tenant(conn: &rusqlite::Connection, tenant: &TenantId) -> DbResult<()> {
    match status_of(conn, tenant)?.as_deref() {
        None => Err(no_tenant(tenant).into()),
        Some("deleting") => Err(StoreError::Conflict(format!(
            "tenant '{tenant}' is being deleted; make it again with `glint tenants create {tenant}` once it is gone"
        ))
        .into()),
        Some(_) => Ok(()),
    }
}

/// The tenant's status as stored; `None` if there is no such tenant.
fn status_of(conn: &rusqlite::Connection, tenant: &TenantId) -> DbResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT status FROM tenants WHERE id = ?1",
            params![tenant.as_str()],
            |r| r.get(0),
        )
        .optional()?)
}

fn no_tenant(id: &TenantId) -> StoreError {
    StoreError::NotFound(format!(
        "no tenant '{id}'; `glint tenants list` shows the tenants"
    ))
}

/// Deletes the rows of `tenant` in `table`; how many went.
fn delete_rows(tx: &rusqlite::Transaction, table: &str, tenant: &TenantId) -> DbResult<u64> {
    Ok(tx.execute(
        &format!("DELETE FROM {table} WHERE tenant = ?1"),
        params![tenant.as_str()],
    )? as u64)
}

impl EmbeddedStore {
    /// Sets one column of a tenant's row, and says so on the change feed.
    async fn update_tenant(
        &self,
        id: &TenantId,
        column: &'static str,
        value: String,
    ) -> Result<TenantRecord> {
        let tenant = id.clone();
        self.with(move |conn| {
            let changed = conn.execute(
                &format!("UPDATE tenants SET {column} = ?2 WHERE id = ?1"),
                params![tenant.as_str(), value],
            )?;
            if changed == 0 {
                return Err(no_tenant(&tenant).into());
            }
            Ok(())
        })
        .await?;
        let record = self.tenant(id).await?;
        self.changed(Change::Tenant { tenant: id.clone() });
        Ok(record)
    }
}

#[async_trait]
impl Tenants for EmbeddedStore {
    async fn create_tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        let record = TenantRecord {
            id: id.clone(),
            status: TenantStatus::Active,
            created_at_ms: now_ms(),
            quotas: Quotas::default(),
        };
        self.with(move |conn| {
            let made = conn.execute(
                "INSERT INTO tenants (id, created_at_ms, status) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![record.id.as_str(), record.created_at_ms, record.status.as_str()],
            )?;
            if made == 0 {
                return Err(StoreError::Conflict(format!(
                    "tenant '{}' exists already; `glint tenants list` shows the tenants",
                    record.id
                ))
                .into());
            }
            Ok(record)
        })
        .await
        .inspect(|r| self.changed(Change::Tenant { tenant: r.id.clone() }))
    }

    async fn tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        let id = id.clone();
        self.with(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM tenants WHERE id = ?1"),
                    params![id.as_str()],
                    tenant_record,
                )
                .optional()?;
            match row {
                Some(row) => parse(row),
                None => Err(no_tenant(&id).into()),
            }
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM tenants ORDER BY id"))?;
            let rows = stmt.query_map([], tenant_record)?;
            rows.map(|r| parse(r?)).collect()
        })
        .await
    }

    async fn set_tenant_status(&self, id: &TenantId, status: TenantStatus) -> Result<TenantRecord> {
        self.update_tenant(id, "status", status.as_str().to_string())
            .await
    }

    async fn set_quotas(&self, id: &TenantId, quotas: Quotas) -> Result<TenantRecord> {
        let json = serde_json::to_string(&quotas)
            .map_err(|e| StoreError::Backend(format!("cannot write quotas: {e}")))?;
        self.update_tenant(id, "quotas", json).await
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<Removed> {
        let tenant = id.clone();
        let (removed, functions) = self
            .with(move |conn| {
                let tx = conn.transaction()?;
                match status_of(&tx, &tenant)?.as_deref() {
                    None => return Err(no_tenant(&tenant).into()),
                    Some("deleting") => {}
                    Some(_) => {
                        return Err(StoreError::Conflict(format!(
                            "tenant '{tenant}' is not marked for deletion"
                        ))
                        .into());
                    }
                }
                let functions: Vec<String> = tx
                    .prepare("SELECT name FROM functions WHERE tenant = ?1")?
                    .query_map(params![tenant.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let (components, component_bytes): (u64, u64) = tx.query_row(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM artifacts WHERE tenant = ?1",
                    params![tenant.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let removed = Removed {
                    functions: delete_rows(&tx, "functions", &tenant)?,
                    versions: delete_rows(&tx, "versions", &tenant)?,
                    components,
                    component_bytes,
                    secrets: delete_rows(&tx, "secrets", &tenant)?,
                    keys: delete_rows(&tx, "api_keys", &tenant)?,
                    log_records: delete_rows(&tx, "logs", &tenant)?,
                    usage_records: delete_rows(&tx, "usage", &tenant)?,
                    pending_regions: Vec::new(),
                };
                for table in ["artifacts", "version_counters", "aliases", "env_vars"] {
                    delete_rows(&tx, table, &tenant)?;
                }
                tx.execute(
                    "DELETE FROM tenants WHERE id = ?1",
                    params![tenant.as_str()],
                )?;
                tx.commit()?;
                Ok((removed, functions))
            })
            .await?;
        for name in functions {
            if let Ok(name) = name.parse() {
                self.changed(Change::Function {
                    tenant: id.clone(),
                    name,
                });
            }
        }
        self.changed(Change::Secrets { tenant: id.clone() });
        self.changed(Change::Keys);
        self.changed(Change::Tenant { tenant: id.clone() });
        Ok(removed)
    }
}
