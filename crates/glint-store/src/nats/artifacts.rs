//! [`Artifacts`] on JetStream: component bytes in an object store, named
//! `<tenant>/<sha256>`. A deploy puts the bytes before anything refers to them.

use async_nats::jetstream::object_store;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{NatsStore, backend};
use crate::model::*;
use crate::{Artifacts, Result, StoreError};

fn object_name(tenant: &TenantId, sha256: &str) -> String {
    format!("{tenant}/{sha256}")
}

impl NatsStore {
    /// Stores a component's bytes, unless they are there already.
    pub(crate) async fn put_artifact(
        &self,
        tenant: &TenantId,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let name = object_name(tenant, sha256);
        // Putting an object again under its name is harmless, so this write may be
        // retried like a read.
        super::patiently(|| async {
            if let Ok(info) = self.artifacts.info(&name).await
                && !info.deleted
                && info.size == bytes.len()
            {
                return Ok(());
            }
            let mut reader = bytes;
            self.artifacts
                .put(name.as_str(), &mut reader)
                .await
                .map_err(|e| backend("storing a component", e))?;
            Ok(())
        })
        .await
    }

    /// Whether the component was put in the last hour (or cannot be read): a deploy may
    /// be about to refer to it, so it is not deleted yet.
    pub(crate) async fn artifact_is_recent(&self, tenant: &TenantId, sha256: &str) -> bool {
        let Ok(info) = self.artifacts.info(object_name(tenant, sha256)).await else {
            return false;
        };
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        info.modified
            .is_none_or(|m| std::time::SystemTime::from(m) > hour_ago)
    }

    /// Deletes a component's bytes; a missing object is no error.
    pub(crate) async fn delete_artifact(&self, tenant: &TenantId, sha256: &str) -> Result<()> {
        match self.artifacts.delete(object_name(tenant, sha256)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend("deleting a component", e)),
        }
    }
}

#[async_trait]
impl Artifacts for NatsStore {
    async fn artifact(&self, tenant: &TenantId, sha256: &str) -> Result<Vec<u8>> {
        let mut object = match self.artifacts.get(object_name(tenant, sha256)).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
                return Err(StoreError::NotFound(format!(
                    "component {sha256} is not stored; deploy the function again"
                )));
            }
            Err(e) => return Err(backend("reading a component", e)),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| backend("reading a component", e))?;
        // The object store checks its own digest; this checks it is the one asked for.
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(backend(
                "reading a component",
                format!("the bytes stored as {sha256} do not hash to it"),
            ));
        }
        Ok(bytes)
    }
}
