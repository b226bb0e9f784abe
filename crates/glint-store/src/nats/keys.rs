//! [`KeyStore`] on JetStream: one entry per API key in the registry bucket,
//! `apikey.<tenant>.<id>`, holding the key's hash and, once revoked, when. A revoked
//! key's entry stays, so revocation is final and [`KeyStore::any_key_made`] remembers.

use async_nats::jetstream::kv;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{NatsStore, from_json, names, scan, to_json};
use crate::model::*;
use crate::{KeyStore, Result, StoreError};

#[derive(Serialize, Deserialize)]
struct StoredKey {
    #[serde(flatten)]
    record: ApiKeyRecord,
    key_hash: String,
    revoked_at_ms: Option<i64>,
}

impl NatsStore {
    /// Changes a live key's record with a revision-checked write; `what` names it in
    /// errors.
    async fn change_live_key(
        &self,
        tenant: &TenantId,
        id: &str,
        what: &str,
        change: impl FnOnce(&mut StoredKey),
    ) -> Result<()> {
        let not_found = || {
            StoreError::NotFound(format!(
                "no live API key '{id}'; `glint keys list` shows the keys"
            ))
        };
        let key = names::api_key_key(tenant, id);
        let entry = self
            .registry_entry_at_origin(&key, "reading an API key")
            .await?
            .filter(|e| e.operation == kv::Operation::Put)
            .ok_or_else(not_found)?;
        let mut stored: StoredKey = from_json("an API key record", &entry.value)?;
        if stored.revoked_at_ms.is_some() {
            return Err(not_found());
        }
        change(&mut stored);
        let bytes = to_json("an API key", &stored)?;
        // Sent again while no server takes it (a stream electing its leader).
        let written = self
            .registry
            .send(|| async {
                match self
                    .registry
                    .write
                    .update(&key, bytes.clone(), entry.revision)
                    .await
                {
                    Ok(revision) => Ok(Some(revision)),
                    // Changed by another node meanwhile: revoked, or its role changed,
                    // which only a node's start does, to the same role.
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                    Err(e) => Err(self.registry.unreachable(what, e)),
                }
            })
            .await?;
        match written {
            Some(revision) => {
                self.registry.settle(&key, revision).await;
                Ok(())
            }
            None => Err(not_found()),
        }
    }

    async fn stored_keys(&self, filter: &str) -> Result<Vec<StoredKey>> {
        scan::entries(&self.client, &self.registry.here, filter)
            .await?
            .iter()
            .map(|found| from_json("an API key record", &found.value))
            .collect()
    }
}

#[async_trait]
impl KeyStore for NatsStore {
    async fn create_key(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        key_hash: &str,
        prefix: &str,
    ) -> Result<ApiKeyRecord> {
        self.require_tenant(tenant).await?;
        let record = ApiKeyRecord::new(tenant, name, role, key_hash, prefix);
        let stored = StoredKey {
            record: record.clone(),
            key_hash: key_hash.to_string(),
            revoked_at_ms: None,
        };
        let key = names::api_key_key(tenant, &record.id);
        let bytes = to_json("an API key", &stored)?;
        let made = self
            .registry
            .send(|| async {
                match self.registry.write.create(&key, bytes.clone()).await {
                    Ok(revision) => Ok(Some(revision)),
                    // Stored already: it keeps its record as it is, revoked or not.
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                    Err(e) => Err(self.registry.unreachable("storing an API key", e)),
                }
            })
            .await?;
        if let Some(revision) = made {
            self.registry.settle(&key, revision).await;
        }
        Ok(record)
    }

    async fn keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>> {
        let mut out: Vec<ApiKeyRecord> = self
            .stored_keys(&format!("apikey.{tenant}.*"))
            .await?
            .into_iter()
            .filter(|k| k.revoked_at_ms.is_none())
            .map(|k| k.record)
            .collect();
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    async fn all_key_hashes(&self) -> Result<Vec<(String, ApiKeyRecord)>> {
        Ok(self
            .stored_keys("apikey.>")
            .await?
            .into_iter()
            .filter(|k| k.revoked_at_ms.is_none())
            .map(|k| (k.key_hash, k.record))
            .collect())
    }

    async fn revoke_key(&self, tenant: &TenantId, id: &str) -> Result<()> {
        self.change_live_key(tenant, id, "revoking an API key", |stored| {
            stored.revoked_at_ms = Some(now_ms())
        })
        .await
    }

    async fn set_key_role(&self, tenant: &TenantId, id: &str, role: Role) -> Result<()> {
        self.change_live_key(tenant, id, "changing an API key's role", |stored| {
            stored.record.role = role
        })
        .await
    }

    async fn any_key_made(&self) -> Result<bool> {
        Ok(
            !scan::entries(&self.client, &self.registry.here, "apikey.>")
                .await?
                .is_empty(),
        )
    }
}
