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

    async fn set_tenant_status(&self, id: &TenantId, status: TenantStatus) -> Result<TenantRecord> {
        let key = names::tenant_key(id);
        // Revision-checked: a write that lost a race reads again and writes again.
        for _ in 0..super::registry::MAX_TRIES {
            let entry = self
                .registry_entry_at_origin(&key, "reading a tenant")
                .await?
                .filter(|e| e.operation == kv::Operation::Put);
            let (mut record, revision) = match entry {
                Some(entry) => (
                    from_json::<TenantRecord>("a tenant record", &entry.value)?,
                    entry.revision,
                ),
                // `default` has no entry until its first change.
                None if id.as_str() == DEFAULT_TENANT => (default_tenant(), 0),
                None => {
                    return Err(StoreError::NotFound(format!(
                        "no tenant '{id}'; `glint tenants list` shows the tenants"
                    )));
                }
            };
            record.status = status;
            let bytes = to_json("a tenant", &record)?;
            let written = if revision == 0 {
                self.registry.write.create(&key, bytes).await.map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                })
            } else {
                self.registry
                    .write
                    .update(&key, bytes, revision)
                    .await
                    .map_err(|e| {
                        (
                            e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    })
            };
            match written {
                Ok(revision) => {
                    self.registry.settle(&key, revision).await;
                    return Ok(record);
                }
                Err((true, _)) => super::registry::contention_pause().await,
                Err((false, e)) => return Err(self.registry.unreachable("changing a tenant", e)),
            }
        }
        Err(StoreError::Conflict(format!(
            "tenant '{id}' is being changed by other nodes all the time; try again"
        )))
    }
}
