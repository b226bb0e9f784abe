//! [`Tenants`] on SQLite: the `tenants` table.

use std::collections::HashMap;

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
        Some("deleting") => Err(being_deleted(tenant).into()),
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

fn being_deleted(id: &TenantId) -> StoreError {
    StoreError::Conflict(format!(
        "tenant '{id}' is being deleted; finish it with `glint tenants delete {id} --yes`, \
         then make it again with `glint tenants create {id}` if it is wanted"
    ))
}

fn no_tenant(id: &TenantId) -> StoreError {
    StoreError::NotFound(format!(
        "no tenant '{id}'; `glint tenants list` shows the tenants"
    ))
}

/// Every table of `glint.db` with a `tenant` column.
const TENANT_TABLES: [&str; 10] = [
    "functions",
    "versions",
    "artifacts",
    "version_counters",
    "aliases",
    "env_vars",
    "secrets",
    "api_keys",
    "logs",
    "usage",
];

/// Deletes the rows of `tenant` in `table`; how many went.
fn delete_rows(tx: &rusqlite::Transaction, table: &str, tenant: &TenantId) -> DbResult<u64> {
    Ok(tx.execute(
        &format!("DELETE FROM {table} WHERE tenant = ?1"),
        params![tenant.as_str()],
    )? as u64)
}

impl EmbeddedStore {
    /// Sets one column of a tenant's row, and says so on the change feed.
    /// `only_if` adds to the row's condition (` AND ...`).
    async fn update_tenant(
        &self,
        id: &TenantId,
        column: &'static str,
        value: String,
        only_if: &'static str,
    ) -> Result<TenantRecord> {
        let tenant = id.clone();
        self.with(move |conn| {
            let changed = conn.execute(
                &format!("UPDATE tenants SET {column} = ?2 WHERE id = ?1{only_if}"),
                params![tenant.as_str(), value],
            )?;
            if changed == 0 {
                return Err(match status_of(conn, &tenant)? {
                    None => no_tenant(&tenant),
                    Some(_) => being_deleted(&tenant),
                }
                .into());
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
            let tx = conn.transaction()?;
            let made = tx.execute(
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
            // A name used before starts empty, whatever a write racing its deletion (a
            // guest's last log lines, a node's last usage) left behind.
            for table in TENANT_TABLES {
                delete_rows(&tx, table, &record.id)?;
            }
            tx.commit()?;
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
        // A deletion, once begun, is only finished: a resume racing it changes nothing.
        let only_if = match status {
            TenantStatus::Deleting => "",
            _ => " AND status != 'deleting'",
        };
        self.update_tenant(id, "status", status.as_str().to_string(), only_if)
            .await
    }

    async fn set_quotas(&self, id: &TenantId, quotas: Quotas) -> Result<TenantRecord> {
        let json = serde_json::to_string(&quotas)
            .map_err(|e| StoreError::Backend(format!("cannot write quotas: {e}")))?;
        self.update_tenant(id, "quotas", json, "").await
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
                // Each table once, with how many rows went.
                let mut went = HashMap::new();
                for table in TENANT_TABLES {
                    went.insert(table, delete_rows(&tx, table, &tenant)?);
                }
                let removed = Removed {
                    functions: went["functions"],
                    versions: went["versions"],
                    components,
                    component_bytes,
                    secrets: went["secrets"],
                    keys: went["api_keys"],
                    log_records: went["logs"],
                    usage_records: went["usage"],
                    pending_regions: Vec::new(),
                };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with a `tenant` column left out of TENANT_TABLES would keep a deleted
    /// tenant's rows.
    #[test]
    fn every_table_with_a_tenant_is_swept() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::SCHEMA).unwrap();
        let tables: Vec<String> = conn
            .prepare(
                "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c
                 WHERE m.type = 'table' AND c.name = 'tenant' ORDER BY m.name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut swept = TENANT_TABLES.map(str::to_string).to_vec();
        swept.sort();
        assert_eq!(tables, swept);
    }
}
