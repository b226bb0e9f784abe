//! [`KeyStore`] on SQLite: API keys, kept as their sha256 only.

use async_trait::async_trait;
use rusqlite::params;

use super::{DbResult, EmbeddedStore};
use crate::model::*;
use crate::{KeyStore, Result, StoreError};

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

fn key_record(row: (String, String, String, String, String, i64)) -> DbResult<ApiKeyRecord> {
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
        let record = ApiKeyRecord::new(tenant, name, role, key_hash, prefix);
        let key_hash = key_hash.to_string();
        self.with(move |conn| {
            super::tenants::require_tenant(conn, &record.tenant)?;
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
        .inspect(|_| self.changed(crate::Change::Keys))
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
                )).into());
            }
            Ok(())
        })
        .await
        .inspect(|_| self.changed(crate::Change::Keys))
    }

    async fn set_key_role(&self, tenant: &TenantId, id: &str, role: Role) -> Result<()> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.with(move |conn| {
            let n = conn.execute(
                "UPDATE api_keys SET role = ?3 WHERE tenant = ?1 AND id = ?2 AND revoked_at_ms IS NULL",
                params![tenant.as_str(), id, role.as_str()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "no live API key '{id}'; `glint keys list` shows the keys"
                ))
                .into());
            }
            Ok(())
        })
        .await
        .inspect(|_| self.changed(crate::Change::Keys))
    }
}
