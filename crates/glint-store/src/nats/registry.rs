//! [`Registry`] on JetStream. A function is one document in the registry bucket,
//! `fn.<tenant>.<name>`: its route, version records, aliases, env vars and version
//! counter. Every change to a function reads the document, changes it, and writes it back
//! by a revision-checked update, so a change is whole or absent and two nodes changing
//! one function at once cannot both win: the loser reads again and retries.
//!
//! A deploy, in order (and why each crash point is safe):
//! 1. the component's bytes go into the object store, by sha256. A crash here leaves an
//!    object that nothing refers to; the next deploy of the same bytes reuses it.
//! 2. the route is claimed, `route.<route>` → (tenant, function), by a create (or a
//!    revision-checked take-over of a claim whose function does not exist). A crash here
//!    leaves a claim of a function with no document; the same function's next deploy
//!    finds it its own, and another function may take it over.
//! 3. the function's document is written with the new version and the alias moved, in
//!    one revision-checked write: this is the commit. Before it, no reader sees the
//!    version; after it, every reader sees all of it.
//! 4. a claim on the route the function had before is released.
//!
//! The document holds every version's manifest, so it grows with the versions kept: a
//! deploy that would take it over NATS's message size is refused with what to delete.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{NatsStore, backend, from_json, lost_race, names, scan, to_json};
use crate::model::*;
use crate::{NewVersion, Registry, Result, StoreError, registry_rules};

/// How often a change is tried again when another node changed the function first.
pub(super) const MAX_TRIES: usize = 50;

#[derive(Clone, Serialize, Deserialize)]
struct FunctionDoc {
    tenant: TenantId,
    name: FunctionName,
    route: String,
    created_at_ms: i64,
    updated_at_ms: i64,
    /// The last version number given out: numbers are never reused.
    last_version: u32,
    versions: BTreeMap<u32, StoredVersion>,
    aliases: BTreeMap<String, StoredAlias>,
    env: BTreeMap<String, String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredVersion {
    sha256: String,
    size: u64,
    manifest: String,
    created_at_ms: i64,
    /// Missing in a document from before WASI 0.3 was accepted.
    #[serde(default = "oldest_world")]
    world: String,
}

fn oldest_world() -> String {
    OLDEST_WORLD.to_string()
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredAlias {
    targets: Vec<AliasTarget>,
    updated_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct RouteClaim {
    tenant: TenantId,
    function: FunctionName,
}

impl FunctionDoc {
    fn record(&self) -> FunctionRecord {
        FunctionRecord {
            tenant: self.tenant.clone(),
            name: self.name.clone(),
            route: self.route.clone(),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        }
    }

    fn version(&self, number: u32) -> Option<VersionRecord> {
        self.versions.get(&number).map(|v| VersionRecord {
            tenant: self.tenant.clone(),
            function: self.name.clone(),
            version: VersionId(number),
            sha256: v.sha256.clone(),
            size: v.size,
            manifest: v.manifest.clone(),
            world: v.world.clone(),
            created_at_ms: v.created_at_ms,
        })
    }

    fn numbers(&self) -> Vec<u32> {
        self.versions.keys().copied().collect()
    }

    fn check_version(&self, version: VersionId) -> Result<()> {
        if self.versions.contains_key(&version.0) {
            Ok(())
        } else {
            Err(registry_rules::no_version(
                &self.name,
                version,
                &self.numbers(),
            ))
        }
    }

    fn shas(&self) -> impl Iterator<Item = &str> {
        self.versions.values().map(|v| v.sha256.as_str())
    }
}

impl NatsStore {
    /// The function's document and its revision, if it exists, from this region's copy
    /// or (`at_origin`, for a change) from the origin.
    async fn read_function(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        at_origin: bool,
    ) -> Result<Option<(FunctionDoc, u64)>> {
        let key = names::function_key(tenant, name);
        let entry = if at_origin {
            self.registry_entry_at_origin(&key, "reading a function")
                .await?
        } else {
            self.registry_entry(&key, "reading a function").await?
        };
        match entry {
            Some(e) if e.operation == kv::Operation::Put => Ok(Some((
                from_json("a function record", &e.value)?,
                e.revision,
            ))),
            _ => Ok(None),
        }
    }

    async fn function_doc(&self, tenant: &TenantId, name: &FunctionName) -> Result<FunctionDoc> {
        self.read_function(tenant, name, false)
            .await?
            .map(|(doc, _)| doc)
            .ok_or_else(|| StoreError::FunctionNotFound(name.clone()))
    }

    /// Writes the document if the function is still at `revision` (0: does not exist).
    /// `Ok(false)`: another node changed it first.
    async fn write_function(&self, doc: &FunctionDoc, revision: u64) -> Result<bool> {
        let bytes = to_json("a function record", doc)?;
        let limit = self.client.server_info().max_payload.saturating_sub(4096);
        if bytes.len() > limit {
            return Err(StoreError::Limit(format!(
                "function '{}' keeps {} versions, too many for one record of the store ({} bytes, at most {limit}); \
                 delete old versions (DELETE /api/v1/functions/{}/versions/N), then deploy again",
                doc.name,
                doc.versions.len(),
                bytes.len(),
                doc.name
            )));
        }
        let key = names::function_key(&doc.tenant, &doc.name);
        self.registry
            .send(|| self.try_write_function(&key, bytes.clone(), revision))
            .await
    }

    async fn try_write_function(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        revision: u64,
    ) -> Result<bool> {
        let written = if revision == 0 {
            match self.registry.write.create(key, bytes).await {
                Ok(revision) => revision,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(self.registry.unreachable("storing a function", e)),
            }
        } else {
            match self.registry.write.update(key, bytes, revision).await {
                Ok(revision) => revision,
                Err(e) if lost_race(&e) => return Ok(false),
                Err(e) => return Err(self.registry.unreachable("storing a function", e)),
            }
        };
        self.registry.settle(key, written).await;
        Ok(true)
    }

    /// Reads the function, applies `change`, and writes it back, again from the read
    /// when another node got there first.
    async fn change_function<T>(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        mut change: impl FnMut(&mut FunctionDoc) -> Result<T>,
    ) -> Result<T> {
        for _ in 0..MAX_TRIES {
            let (mut doc, revision) = self
                .read_function(tenant, name, true)
                .await?
                .ok_or_else(|| StoreError::FunctionNotFound(name.clone()))?;
            let out = change(&mut doc)?;
            doc.updated_at_ms = now_ms();
            if self.write_function(&doc, revision).await? {
                return Ok(out);
            }
            contention_pause().await;
        }
        Err(too_busy(name))
    }

    /// Claims `route` for the function. A claim whose function is gone (a deploy that
    /// stopped after claiming) is taken over.
    async fn claim_route(&self, tenant: &TenantId, name: &FunctionName, route: &str) -> Result<()> {
        let key = names::route_key(tenant, route);
        let claim = to_json(
            "a route claim",
            &RouteClaim {
                tenant: tenant.clone(),
                function: name.clone(),
            },
        )?;
        for _ in 0..MAX_TRIES {
            let entry = self
                .registry_entry_at_origin(&key, "reading a route")
                .await?;
            let revision = match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    let owner: RouteClaim = from_json("a route claim", &e.value)?;
                    if owner.tenant == *tenant && owner.function == *name {
                        return Ok(());
                    }
                    if self
                        .read_function(&owner.tenant, &owner.function, true)
                        .await?
                        .is_some()
                    {
                        return Err(registry_rules::route_taken(route, owner.function.as_str()));
                    }
                    e.revision
                }
                Some(marker) => marker.revision,
                None => 0,
            };
            match self
                .registry
                .write
                .update(&key, claim.clone(), revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if lost_race(&e) => contention_pause().await,
                Err(e) => return Err(self.registry.unreachable("claiming a route", e)),
            }
        }
        Err(too_busy(name))
    }

    /// Moves the route claims of a registry from before routes were per tenant
    /// (`route.<route>`) under their tenants (`route.<tenant>.<route>`), so a deploy
    /// still finds each route's owner. Claims that cannot be moved now are left for the
    /// next start, with a warning.
    pub(super) async fn move_route_claims(&self) {
        let old = match scan::entries(&self.client, &self.registry.here, "route.*").await {
            Ok(old) => old,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the route claims to move them under their tenants; trying at the next start");
                return;
            }
        };
        for found in old {
            let Some(route) = found.key.strip_prefix("route.") else {
                continue;
            };
            let Ok(claim) = from_json::<RouteClaim>("a route claim", &found.value) else {
                continue;
            };
            let key = format!("route.{}.{route}", claim.tenant);
            let moved = match self.registry.write.create(&key, found.value.clone()).await {
                Ok(_) => true,
                // Moved before (a start cut short), or claimed anew since: the old claim
                // goes only if the new one names the same function.
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self
                    .registry_entry_at_origin(&key, "reading a route")
                    .await
                    .ok()
                    .flatten()
                    .and_then(|e| from_json::<RouteClaim>("a route claim", &e.value).ok())
                    .is_some_and(|c| c.tenant == claim.tenant && c.function == claim.function),
                Err(_) => false,
            };
            let old = self
                .registry_entry_at_origin(&found.key, "reading a route")
                .await
                .ok()
                .flatten();
            if let (true, Some(old)) = (moved, old) {
                // Only the claim as it was read: a claim written since stays.
                if let Err(e) = self
                    .registry
                    .write
                    .purge_expect_revision(&found.key, Some(old.revision))
                    .await
                {
                    tracing::warn!(key = found.key, error = %e, "could not remove a moved route claim");
                }
            } else if !moved {
                tracing::warn!(
                    key = found.key,
                    "could not move a route claim under its tenant; trying at the next start"
                );
            }
        }
    }

    /// Releases the function's claim on `route`, if it still holds it.
    async fn release_route(&self, tenant: &TenantId, name: &FunctionName, route: &str) {
        let key = names::route_key(tenant, route);
        let Ok(Some(entry)) = self.registry_entry_at_origin(&key, "reading a route").await else {
            return;
        };
        let ours = entry.operation == kv::Operation::Put
            && from_json::<RouteClaim>("a route claim", &entry.value)
                .is_ok_and(|c| c.tenant == *tenant && c.function == *name);
        if ours
            && let Err(e) = self
                .registry
                .write
                .purge_expect_revision(&key, Some(entry.revision))
                .await
        {
            // Harmless: a claim whose function moved on is taken over when needed.
            tracing::warn!(route, error = %e, "could not release a route claim");
        }
    }

    /// Every function document matching `filter` (`fn.<tenant>.*` or `fn.>`).
    async fn function_docs(&self, filter: &str) -> Result<Vec<FunctionDoc>> {
        let mut docs = scan::entries(&self.client, &self.registry.here, filter)
            .await?
            .iter()
            .map(|found| from_json::<FunctionDoc>("a function record", &found.value))
            .collect::<Result<Vec<_>>>()?;
        docs.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        Ok(docs)
    }

    /// Deletes the components of `shas` that no function of the tenant uses any more.
    /// An object put in the last hour stays: a deploy may be about to refer to it.
    async fn delete_unreferenced(&self, tenant: &TenantId, shas: Vec<String>) -> Result<()> {
        let docs = self.function_docs(&format!("fn.{tenant}.*")).await?;
        for sha in shas {
            if docs.iter().any(|d| d.shas().any(|s| s == sha)) {
                continue;
            }
            if self.artifact_is_recent(tenant, &sha).await {
                continue;
            }
            self.delete_artifact(tenant, &sha).await?;
        }
        Ok(())
    }
}

fn too_busy(name: &FunctionName) -> StoreError {
    StoreError::Conflict(format!(
        "function '{name}' is being changed by other nodes all the time; try again"
    ))
}

/// A short random wait before retrying a write that lost a race.
pub(super) async fn contention_pause() {
    tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(1..20))).await;
}

#[async_trait]
impl Registry for NatsStore {
    async fn deploy(&self, new: NewVersion) -> Result<VersionRecord> {
        self.require_tenant(&new.tenant).await?;
        self.put_artifact(&new.tenant, &new.sha256, &new.component)
            .await?;
        self.claim_route(&new.tenant, &new.function, &new.route)
            .await?;
        for _ in 0..MAX_TRIES {
            let now = now_ms();
            let (mut doc, revision) =
                match self.read_function(&new.tenant, &new.function, true).await? {
                    Some(found) => found,
                    None => (
                        FunctionDoc {
                            tenant: new.tenant.clone(),
                            name: new.function.clone(),
                            route: new.route.clone(),
                            created_at_ms: now,
                            updated_at_ms: now,
                            last_version: 0,
                            versions: BTreeMap::new(),
                            aliases: BTreeMap::new(),
                            env: BTreeMap::new(),
                        },
                        0,
                    ),
                };
            let old_route = std::mem::replace(&mut doc.route, new.route.clone());
            doc.updated_at_ms = now;
            doc.last_version += 1;
            let number = doc.last_version;
            doc.versions.insert(
                number,
                StoredVersion {
                    sha256: new.sha256.clone(),
                    size: new.component.len() as u64,
                    manifest: new.manifest.clone(),
                    created_at_ms: now,
                    world: new.world.clone(),
                },
            );
            if let Some(alias) = &new.move_alias {
                doc.aliases.insert(
                    alias.to_string(),
                    StoredAlias {
                        targets: vec![AliasTarget {
                            version: VersionId(number),
                            weight: 1.0,
                        }],
                        updated_at_ms: now,
                    },
                );
            }
            if self.write_function(&doc, revision).await? {
                if old_route != new.route && revision != 0 {
                    self.release_route(&new.tenant, &new.function, &old_route)
                        .await;
                }
                return doc
                    .version(number)
                    .ok_or_else(|| backend("deploying", "the version just written is missing"));
            }
            contention_pause().await;
        }
        Err(too_busy(&new.function))
    }

    async fn all_functions(&self) -> Result<Vec<FunctionRecord>> {
        Ok(self
            .function_docs("fn.>")
            .await?
            .iter()
            .map(FunctionDoc::record)
            .collect())
    }

    async fn functions(&self, tenant: &TenantId) -> Result<Vec<FunctionRecord>> {
        Ok(self
            .function_docs(&format!("fn.{tenant}.*"))
            .await?
            .iter()
            .map(FunctionDoc::record)
            .collect())
    }

    async fn function(&self, tenant: &TenantId, name: &FunctionName) -> Result<FunctionRecord> {
        Ok(self.function_doc(tenant, name).await?.record())
    }

    async fn versions(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<VersionRecord>> {
        let doc = self.function_doc(tenant, name).await?;
        Ok(doc
            .numbers()
            .into_iter()
            .filter_map(|n| doc.version(n))
            .collect())
    }

    async fn version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<VersionRecord> {
        let doc = self.function_doc(tenant, name).await?;
        doc.version(version.0)
            .ok_or_else(|| registry_rules::no_version(name, version, &doc.numbers()))
    }

    async fn aliases(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<AliasRecord>> {
        let doc = self.function_doc(tenant, name).await?;
        doc.aliases
            .iter()
            .map(|(alias, stored)| {
                Ok(AliasRecord {
                    name: alias
                        .parse()
                        .map_err(|e| backend("an alias name is corrupt", e))?,
                    targets: stored.targets.clone(),
                    updated_at_ms: stored.updated_at_ms,
                })
            })
            .collect()
    }

    async fn set_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
        targets: Vec<AliasTarget>,
    ) -> Result<AliasRecord> {
        self.change_function(tenant, name, |doc| {
            for t in &targets {
                doc.check_version(t.version)?;
            }
            let stored = StoredAlias {
                targets: targets.clone(),
                updated_at_ms: now_ms(),
            };
            doc.aliases.insert(alias.to_string(), stored.clone());
            Ok(AliasRecord {
                name: alias.clone(),
                targets: stored.targets,
                updated_at_ms: stored.updated_at_ms,
            })
        })
        .await
    }

    async fn delete_alias(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        alias: &AliasName,
    ) -> Result<()> {
        self.change_function(tenant, name, |doc| {
            doc.aliases
                .remove(alias.as_str())
                .map(|_| ())
                .ok_or_else(|| registry_rules::no_alias(name, alias))
        })
        .await
    }

    async fn delete_function(&self, tenant: &TenantId, name: &FunctionName) -> Result<()> {
        let key = names::function_key(tenant, name);
        for _ in 0..MAX_TRIES {
            let (doc, revision) = self
                .read_function(tenant, name, true)
                .await?
                .ok_or_else(|| StoreError::FunctionNotFound(name.clone()))?;
            match self
                .registry
                .write
                .purge_expect_revision(&key, Some(revision))
                .await
            {
                Ok(()) => {
                    self.registry.settle(&key, revision + 1).await;
                    self.release_route(tenant, name, &doc.route).await;
                    self.purge_function_logs(tenant, name).await?;
                    let shas = doc.shas().map(str::to_string).collect();
                    return self.delete_unreferenced(tenant, shas).await;
                }
                Err(e) if e.to_string().contains("wrong last sequence") => contention_pause().await,
                Err(e) => return Err(self.registry.unreachable("deleting a function", e)),
            }
        }
        Err(too_busy(name))
    }

    async fn delete_version(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: VersionId,
    ) -> Result<()> {
        let sha = self
            .change_function(tenant, name, |doc| {
                doc.check_version(version)?;
                if let Some((alias, _)) = doc
                    .aliases
                    .iter()
                    .find(|(_, a)| a.targets.iter().any(|t| t.version == version))
                {
                    return Err(registry_rules::version_in_use(name, alias, version));
                }
                Ok(doc.versions.remove(&version.0).map(|v| v.sha256))
            })
            .await?;
        self.delete_unreferenced(tenant, sha.into_iter().collect())
            .await
    }

    async fn env(&self, tenant: &TenantId, name: &FunctionName) -> Result<Vec<(String, String)>> {
        Ok(self
            .function_doc(tenant, name)
            .await?
            .env
            .into_iter()
            .collect())
    }

    async fn set_env(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.change_function(tenant, name, |doc| {
            doc.env.insert(key.to_string(), value.to_string());
            Ok(())
        })
        .await
    }

    async fn unset_env(&self, tenant: &TenantId, name: &FunctionName, key: &str) -> Result<()> {
        self.change_function(tenant, name, |doc| {
            doc.env
                .remove(key)
                .map(|_| ())
                .ok_or_else(|| registry_rules::no_env(name, key))
        })
        .await
    }
}
