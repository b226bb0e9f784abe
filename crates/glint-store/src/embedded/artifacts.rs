//! [`Artifacts`] on SQLite: component bytes, stored once per tenant and sha256.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::EmbeddedStore;
use crate::model::*;
use crate::{Artifacts, Result, StoreError};

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
            .ok_or_else(|| {
                StoreError::NotFound(format!("no component with sha256 {sha256}")).into()
            })
        })
        .await
    }
}
