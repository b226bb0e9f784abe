//! [`Tenants`] on JetStream: one entry per tenant in the registry bucket,
//! `tenant.<name>`. `default` needs none: it exists in every store, as in a registry
//! made before tenants had records.

use async_nats::jetstream::kv;
use async_trait::async_trait;

use super::{NatsStore, from_json, names, scan, to_json};
use crate::model::*;
use crate::{Registry, Result, Secrets, StoreError, Tenants};

/// The record of `default`, which every store has.
fn default_tenant() -> TenantRecord {
    TenantRecord {
        id: TenantId::default_tenant(),
        status: TenantStatus::Active,
        created_at_ms: 0,
        quotas: Quotas::default(),
    }
}

fn no_tenant(id: &TenantId) -> StoreError {
    StoreError::NotFound(format!(
        "no tenant '{id}'; `glint tenants list` shows the tenants"
    ))
}

impl NatsStore {
    /// Refuses a write for a tenant that does not exist or is being deleted: tenants are
    /// made only by the operator. (A read, then the write: a deploy that read the tenant
    /// just before its deletion began can leave a function behind, which deleting the
    /// tenant again removes.)
    pub(crate) async fn require_tenant(&self, id: &TenantId) -> Result<()> {
        match self.tenant(id).await?.status {
            TenantStatus::Deleting => Err(StoreError::Conflict(format!(
                "tenant '{id}' is being deleted; make it again with `glint tenants create {id}` once it is gone"
            ))),
            _ => Ok(()),
        }
    }

    /// Changes a tenant's record with a revision-checked write (`default` gets its
    /// entry on its first change).
    async fn change_tenant(
        &self,
        id: &TenantId,
        change: impl Fn(&mut TenantRecord) -> Result<()>,
    ) -> Result<TenantRecord> {
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
                None => return Err(no_tenant(id)),
            };
            change(&mut record)?;
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

    /// Deletes everything stored under the tenant's name but its record, and counts it:
    /// for a deletion, and before a tenant is made, so a name used before starts empty
    /// whatever a deletion cut short, or a write racing it, left behind.
    async fn sweep(&self, id: &TenantId) -> Result<Removed> {
        let mut removed = Removed::default();
        // Its logs and usage first, whole: deleting a function deletes its logs too,
        // which would go uncounted.
        let (logs, mut pending) = self.purge_events(names::Events::Logs, id, "*").await?;
        let (usage, more) = self.purge_events(names::Events::Usage, id, "*").await?;
        pending.extend(more);
        pending.sort();
        pending.dedup();
        removed.log_records = logs;
        removed.usage_records = usage;
        removed.pending_regions = pending;
        let components = self.tenant_artifacts(id).await?;
        removed.components = components.len() as u64;
        removed.component_bytes = components.iter().map(|(_, size)| size).sum();
        for function in self.functions(id).await? {
            removed.versions += self.versions(id, &function.name).await?.len() as u64;
            match self.delete_function(id, &function.name).await {
                Ok(()) => removed.functions += 1,
                Err(StoreError::FunctionNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // Those deleting a function keeps (put in the last hour), and those no version
        // refers to.
        for (sha, _) in &components {
            self.delete_artifact(id, sha).await?;
        }
        for secret in self.secrets(id).await? {
            match self.delete_secret(id, &secret.name).await {
                Ok(()) => removed.secrets += 1,
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        removed.keys = self
            .purge_entries(&format!("apikey.{id}.*"), "deleting a tenant's keys")
            .await?;
        // Claims a deploy cut short left.
        self.purge_entries(&format!("route.{id}.*"), "deleting a tenant's routes")
            .await?;
        Ok(removed)
    }

    /// Purges every registry entry under `pattern` (`apikey.<t>.*`); how many were live.
    async fn purge_entries(&self, pattern: &str, what: &str) -> Result<u64> {
        let found = scan::entries(&self.client, &self.registry.here, pattern).await?;
        for entry in &found {
            self.registry.purge(&entry.key, what).await?;
        }
        Ok(found.len() as u64)
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
            quotas: Quotas::default(),
        };
        // A tenant of that name before it may have left something behind.
        if let Err(StoreError::NotFound(_)) = self.tenant(id).await {
            self.sweep(id).await?;
        }
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
            None => Err(no_tenant(id)),
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
        self.change_tenant(id, |record| {
            // A deletion, once begun, is only finished: a resume racing it changes nothing.
            if record.status == TenantStatus::Deleting && status != TenantStatus::Deleting {
                return Err(StoreError::Conflict(format!(
                    "tenant '{id}' is being deleted; finish it with `glint tenants delete {id} --yes`"
                )));
            }
            record.status = status;
            Ok(())
        })
        .await
    }

    async fn set_quotas(&self, id: &TenantId, quotas: Quotas) -> Result<TenantRecord> {
        self.change_tenant(id, |record| {
            record.quotas = quotas;
            Ok(())
        })
        .await
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<Removed> {
        if self.tenant(id).await?.status != TenantStatus::Deleting {
            return Err(StoreError::Conflict(format!(
                "tenant '{id}' is not marked for deletion"
            )));
        }
        let removed = self.sweep(id).await?;
        if removed.pending_regions.is_empty() {
            self.purge_entries(&names::tenant_key(id), "deleting a tenant")
                .await?;
        }
        Ok(removed)
    }
}
