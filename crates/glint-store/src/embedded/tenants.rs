//! [`Tenants`] on SQLite: the `tenants` table.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{DbResult, EmbeddedStore};
use crate::model::*;
use crate::{Result, StoreError, Tenants};

fn tenant_record(r: &rusqlite::Row) -> rusqlite::Result<(String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse((id, status, created_at_ms): (String, String, i64)) -> DbResult<TenantRecord> {
    Ok(TenantRecord {
        id: id.parse()?,
        status: status.parse()?,
        created_at_ms,
    })
}

#[async_trait]
impl Tenants for EmbeddedStore {
    async fn create_tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        let record = TenantRecord {
            id: id.clone(),
            status: TenantStatus::Active,
            created_at_ms: now_ms(),
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
        .inspect(|r| self.changed(crate::Change::Tenant { tenant: r.id.clone() }))
    }

    async fn tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        let id = id.clone();
        self.with(move |conn| {
            let row = conn
                .query_row(
                    "SELECT id, status, created_at_ms FROM tenants WHERE id = ?1",
                    params![id.as_str()],
                    tenant_record,
                )
                .optional()?;
            match row {
                Some(row) => parse(row),
                None => Err(StoreError::NotFound(format!(
                    "no tenant '{id}'; `glint tenants list` shows the tenants"
                ))
                .into()),
            }
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, status, created_at_ms FROM tenants ORDER BY id")?;
            let rows = stmt.query_map([], tenant_record)?;
            rows.map(|r| parse(r?)).collect()
        })
        .await
    }

    async fn set_tenant_status(&self, id: &TenantId, status: TenantStatus) -> Result<TenantRecord> {
        let tenant = id.clone();
        self.with(move |conn| {
            conn.execute(
                "UPDATE tenants SET status = ?2 WHERE id = ?1",
                params![tenant.as_str(), status.as_str()],
            )?;
            Ok(())
        })
        .await?;
        let record = self.tenant(id).await?;
        self.changed(crate::Change::Tenant { tenant: id.clone() });
        Ok(record)
    }
}
