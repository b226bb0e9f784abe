//! [`Secrets`] on SQLite: sealed secret values; plaintext never gets here.

use async_trait::async_trait;
use rusqlite::params;

use super::EmbeddedStore;
use crate::model::*;
use crate::{Result, Secrets, StoreError};

#[async_trait]
impl Secrets for EmbeddedStore {
    async fn set_secret(&self, tenant: &TenantId, name: &str, sealed: Vec<u8>) -> Result<()> {
        let ct = tenant.clone();
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
        .inspect(|_| self.changed(crate::Change::Secrets { tenant: ct.clone() }))
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
        let ct = tenant.clone();
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.with(move |conn| {
            let n = conn.execute(
                "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
                params![tenant.as_str(), name],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "secret '{name}' does not exist; `glint secret list` shows the secrets"
                ))
                .into());
            }
            Ok(())
        })
        .await
        .inspect(|_| self.changed(crate::Change::Secrets { tenant: ct.clone() }))
    }
}
