//! [`Tenants`] on JetStream: one entry per tenant in the registry bucket,
//! `tenant.<name>`. `default` needs none: it exists in every store, as in a registry
//! made before tenants had records.

use async_nats::jetstream::kv;
use async_trait::async_trait;

use super::{NatsStore, from_json, names, scan, to_json};
use crate::model::*;
use crate::{Result, StoreError, Tenants};

/// The record of `default`, which every store has.
fn default_tenant() -> TenantRecord {
    TenantRecord {
        id: TenantId::default_tenant(),
        status: TenantStatus::Active,
        created_at_ms: 0,
    }
}

#[async_trait]
impl Tenants for NatsStore {
    async fn create_tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        let exists = || {
            StoreError::Conflict(format!(
                "tenant '{id}' exists already; `glint tenants list` shows the tenants"
            ))
        };
        if id.as_str() == DEFAULT_TENANT {
            return Err(exists());
        }
        let record = TenantRecord {
            id: id.clone(),
            status: TenantStatus::Active,
            created_at_ms: now_ms(),
        };
        let key = names::tenant_key(id);
        let bytes = to_json("a tenant", &record)?;
        let revision = self
            .registry
            .send(|| async {
                match self.registry.write.create(&key, bytes.clone()).await {
                    Ok(revision) => Ok(revision),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(exists()),
                    Err(e) => Err(self.registry.unreachable("storing a tenant", e)),
                }
            })
            .await?;
        self.registry.settle(&key, revision).await;
        Ok(record)
    }

    async fn tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        let entry = self
            .registry_entry(&names::tenant_key(id), "reading a tenant")
            .await?
            .filter(|e| e.operation == kv::Operation::Put);
        match entry {
            Some(entry) => from_json("a tenant record", &entry.value),
            None if id.as_str() == DEFAULT_TENANT => Ok(default_tenant()),
            None => Err(StoreError::NotFound(format!(
                "no tenant '{id}'; `glint tenants list` shows the tenants"
            ))),
        }
    }

    async fn tenants(&self) -> Result<Vec<TenantRecord>> {
        let mut out: Vec<TenantRecord> =
            scan::entries(&self.client, &self.registry.here, "tenant.*")
                .await?
                .iter()
                .map(|found| from_json("a tenant record", &found.value))
                .collect::<Result<_>>()?;
        if !out.iter().any(|t| t.id.as_str() == DEFAULT_TENANT) {
            out.push(default_tenant());
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
