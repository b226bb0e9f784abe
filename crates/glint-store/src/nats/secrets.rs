//! [`Secrets`] on JetStream: one entry per secret in the registry bucket,
//! `secret.<tenant>.<name>`, holding the value sealed by the node.

use async_nats::jetstream::kv;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{NatsStore, backend, from_json, names, scan, to_json};
use crate::model::*;
use crate::{Result, Secrets, StoreError};

#[derive(Serialize, Deserialize)]
struct StoredSecret {
    name: String,
    /// Sealed bytes, hex.
    sealed: String,
    updated_at_ms: i64,
}

impl NatsStore {
    async fn stored_secrets(&self, tenant: &TenantId) -> Result<Vec<StoredSecret>> {
        let mut out = scan::entries(
            &self.client,
            &self.registry.here,
            &format!("secret.{tenant}.*"),
        )
        .await?
        .iter()
        .map(|found| from_json::<StoredSecret>("a secret", &found.value))
        .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[async_trait]
impl Secrets for NatsStore {
    async fn set_secret(&self, tenant: &TenantId, name: &str, sealed: Vec<u8>) -> Result<()> {
        let stored = StoredSecret {
            name: name.to_string(),
            sealed: hex::encode(sealed),
            updated_at_ms: now_ms(),
        };
        let (key, bytes) = (
            names::secret_key(tenant, name),
            to_json("a secret", &stored)?,
        );
        let revision = self
            .registry
            .send(|| async {
                self.registry
                    .write
                    .put(key.as_str(), bytes.clone())
                    .await
                    .map_err(|e| self.registry.unreachable("storing a secret", e))
            })
            .await?;
        self.registry.settle(&key, revision).await;
        Ok(())
    }

    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<SecretRecord>> {
        Ok(self
            .stored_secrets(tenant)
            .await?
            .into_iter()
            .map(|s| SecretRecord {
                name: s.name,
                updated_at_ms: s.updated_at_ms,
            })
            .collect())
    }

    async fn sealed_secrets(&self, tenant: &TenantId) -> Result<Vec<(String, Vec<u8>)>> {
        self.stored_secrets(tenant)
            .await?
            .into_iter()
            .map(|s| {
                let sealed =
                    hex::decode(&s.sealed).map_err(|e| backend("a secret is corrupt", e))?;
                Ok((s.name, sealed))
            })
            .collect()
    }

    async fn delete_secret(&self, tenant: &TenantId, name: &str) -> Result<()> {
        let key = names::secret_key(tenant, name);
        let entry = self
            .registry_entry_at_origin(&key, "reading a secret")
            .await?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Err(StoreError::NotFound(format!(
                "secret '{name}' does not exist; `glint secret list` shows the secrets"
            )));
        };
        self.registry
            .write
            .purge_expect_revision(&key, Some(entry.revision))
            .await
            .map_err(|e| self.registry.unreachable("deleting a secret", e))?;
        self.registry.settle(&key, entry.revision + 1).await;
        Ok(())
    }
}
