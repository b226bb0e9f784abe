//! Following the store: a node applies every change made on any node (a deploy, an
//! alias move, env, secrets, keys) from the store's change feed, says which versions it
//! serves once they are compiled and routed, and sends a heartbeat, so `glint deploy`
//! can wait for every node and `glint nodes` can list them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use glint_store::{Change, FunctionName, NodeRecord, StoreError, TenantId};
use tokio::sync::{mpsc, watch};

use crate::node::Node;

/// How often a node says it is alive; entries expire after three missed beats.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Applies the change feed until shutdown. Changes that queue up while one is applied
/// are taken together, each function once.
pub fn start_follower(
    node: Arc<Node>,
    mut feed: mpsc::Receiver<Change>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Changes that could not be applied (the store failed), tried again each second.
        let mut failed: Vec<Change> = Vec::new();
        loop {
            let retry = tokio::time::sleep(if failed.is_empty() {
                Duration::from_secs(3600)
            } else {
                RETRY
            });
            let mut batch = std::mem::take(&mut failed);
            tokio::select! {
                change = feed.recv() => match change {
                    Some(change) => batch.push(change),
                    None => return,
                },
                _ = retry => {}
                _ = shutdown.changed() => return,
            }
            while let Ok(more) = feed.try_recv() {
                batch.push(more);
            }
            failed = apply(&node, batch).await;
        }
    })
}

/// How soon a change that failed to apply is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Applies a batch of changes; returns those that failed.
async fn apply(node: &Node, batch: Vec<Change>) -> Vec<Change> {
    let mut failed = Vec::new();
    if batch.contains(&Change::Reset) {
        if let Err(e) = node.keys.reload(node.store.as_ref()).await {
            tracing::error!(error = %e, "cannot reload the API keys after a reset of the change feed; trying again");
            failed.push(Change::Reset);
        } else if let Err(e) = node.tenants.reload(node.store.as_ref()).await {
            tracing::error!(error = %e, "cannot reload the tenants after a reset of the change feed; trying again");
            failed.push(Change::Reset);
        } else if let Err(e) = node.load_all().await {
            tracing::error!(error = %e, "cannot reload the functions after a reset of the change feed; trying again");
            failed.push(Change::Reset);
        } else {
            failed.extend(node.report_all_ready().await);
        }
        return failed;
    }
    let mut keys = false;
    let mut tenant_changed = false;
    let mut changed_tenants: HashSet<TenantId> = HashSet::new();
    let mut tenants: HashSet<TenantId> = HashSet::new(); // whose secrets changed
    let mut functions: HashSet<(TenantId, FunctionName)> = HashSet::new();
    for change in batch {
        match change {
            Change::Keys => keys = true,
            Change::Tenant { tenant } => {
                tenant_changed = true;
                changed_tenants.insert(tenant);
            }
            Change::Secrets { tenant } => {
                tenants.insert(tenant);
            }
            Change::Function { tenant, name } => {
                functions.insert((tenant, name));
            }
            Change::Reset => {}
        }
    }
    if keys && let Err(e) = node.keys.reload(node.store.as_ref()).await {
        tracing::error!(error = %e, "cannot reload the API keys after a change; trying again");
        failed.push(Change::Keys);
    }
    // Tenants deleted (on another node), whose functions are forgotten below.
    let mut gone: Vec<TenantId> = Vec::new();
    if tenant_changed {
        match node.tenants.reload(node.store.as_ref()).await {
            Ok(existing) => gone.extend(
                changed_tenants
                    .into_iter()
                    .filter(|t| !existing.contains(t)),
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the tenants after a change; trying again");
                failed.push(Change::Tenant {
                    tenant: glint_store::TenantId::default_tenant(),
                });
            }
        }
    }
    for tenant in &tenants {
        if let Err(e) = node.follow_tenant(tenant).await {
            tracing::error!(%tenant, error = %e, "cannot apply a change of the tenant's secrets; trying again");
            failed.push(Change::Secrets {
                tenant: tenant.clone(),
            });
        }
    }
    for (tenant, name) in functions {
        if tenants.contains(&tenant) {
            continue; // rebuilt with its tenant just now
        }
        if let Err(e) = node.follow_function(&tenant, &name).await {
            tracing::error!(%tenant, function = %name, error = %e, "cannot apply a change of the function; trying again");
            failed.push(Change::Function { tenant, name });
        }
    }
    // After its functions are forgotten (which moves their meters to be flushed): the
    // usage this node counted for a deleted tenant and has not stored goes with it.
    for tenant in &gone {
        node.meter.discard_tenant(tenant);
    }
    failed
}

/// Sends this node's heartbeat now and every [`HEARTBEAT`] until shutdown.
pub fn start_heartbeat(
    node: Arc<Node>,
    address: String,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started_at_ms = glint_store::now_ms() - node.started.elapsed().as_millis() as i64;
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let record = NodeRecord {
                id: node.node_id.to_string(),
                region: node.region.to_string(),
                address: address.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at_ms,
                seen_at_ms: glint_store::now_ms(),
                functions: node.routes.load().functions().count(),
            };
            if let Err(e) = node.store.heartbeat(&record).await {
                tracing::warn!(error = %e, "cannot send this node's heartbeat");
            }
        }
    })
}

/// Where a new version serves, as `glint deploy` waits for it.
pub struct Rollout {
    /// Nodes serving it, with when they said so (ms since the epoch), by id.
    pub ready: Vec<(String, i64)>,
    /// Live nodes that did not say so in time.
    pub not_ready: Vec<String>,
    /// The region of each live node, by id, as its heartbeat says.
    pub region_of: std::collections::BTreeMap<String, String>,
}

/// How many functions' readiness a node reports at once after a reset of the change feed.
const REPORTS_AT_ONCE: usize = 32;

/// How often a deploy looks again for nodes serving its version.
const ROLLOUT_POLL: Duration = Duration::from_millis(25);

impl Rollout {
    /// Each region of the live nodes, by name, with when its first node served the
    /// version (`None`: none did in time).
    pub fn regions(&self) -> std::collections::BTreeMap<&str, Option<i64>> {
        let mut regions: std::collections::BTreeMap<&str, Option<i64>> = Default::default();
        for (node, region) in &self.region_of {
            let first = regions.entry(region.as_str()).or_default();
            let served = self
                .ready
                .iter()
                .find(|(id, _)| id == node)
                .map(|(_, at)| *at);
            if let Some(at) = served {
                *first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        regions
    }
}

impl Node {
    /// Waits until every live node serves `version`, or `limit` passes. A store that
    /// cannot say (a region cut off from the others) is asked again until then.
    pub async fn wait_ready(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        version: glint_store::VersionId,
        limit: Duration,
    ) -> Result<Rollout, crate::error::ApiError> {
        let deadline = tokio::time::Instant::now() + limit;
        // Readiness entries expire; remember what was seen.
        let mut ready: std::collections::BTreeMap<String, i64> = Default::default();
        loop {
            let asked = async {
                let serving = self.store.ready(tenant, name, version).await?;
                Ok::<_, StoreError>((serving, self.store.nodes().await?))
            };
            let live = match asked.await {
                Ok((serving, live)) => {
                    ready.extend(serving);
                    live
                }
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(crate::error::ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "rollout_unknown",
                        format!(
                            "{name} {version} is stored, but which nodes serve it cannot be read now ({e}); \
                             `glint info {name}` shows it once the store answers"
                        ),
                    ));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read which nodes serve a new version yet");
                    tokio::time::sleep(ROLLOUT_POLL).await;
                    continue;
                }
            };
            let not_ready: Vec<String> = live
                .iter()
                .filter(|n| !ready.contains_key(&n.id))
                .map(|n| n.id.clone())
                .collect();
            if not_ready.is_empty() || tokio::time::Instant::now() >= deadline {
                let region_of: std::collections::BTreeMap<String, String> = live
                    .iter()
                    .map(|n| (n.id.clone(), n.region.clone()))
                    .collect();
                return Ok(Rollout {
                    ready: ready.into_iter().collect(),
                    not_ready,
                    region_of,
                });
            }
            tokio::time::sleep(ROLLOUT_POLL).await;
        }
    }

    /// Rebuilds a function another node (or this one) changed, then says which of its
    /// versions this node serves.
    pub(crate) async fn follow_function(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
    ) -> Result<(), crate::error::ApiError> {
        match self.store.function(tenant, name).await {
            Err(StoreError::FunctionNotFound(_)) => {
                self.forget_function(tenant, name).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
            Ok(_) => {
                self.rebuild_locked(tenant, name).await?;
                self.warm(tenant, name).await;
                // Not said is tried again with the change: a deploy waits for it.
                Ok(self.report_ready(tenant, name).await?)
            }
        }
    }

    async fn follow_tenant(&self, tenant: &TenantId) -> Result<(), crate::error::ApiError> {
        self.rebuild_tenant_locked(tenant).await?;
        for f in self.store.functions(tenant).await? {
            self.report_ready(tenant, &f.name).await?;
        }
        Ok(())
    }

    /// Says which versions this node serves, for every function it routes. After a reset
    /// of the change feed (a watch that could only start late), the functions reloaded may
    /// include a deploy made meanwhile, which waits for this node to say so. Returns the
    /// functions not said, to be tried again.
    async fn report_all_ready(&self) -> Vec<Change> {
        use futures::StreamExt;
        let functions: Vec<(TenantId, FunctionName)> = self
            .routes
            .load()
            .functions()
            .map(|f| (f.tenant.clone(), f.name.clone()))
            .collect();
        futures::stream::iter(functions)
            .map(|(tenant, name)| async move {
                let said = self.report_ready(&tenant, &name).await;
                said.err().map(|_| Change::Function { tenant, name })
            })
            .buffer_unordered(REPORTS_AT_ONCE)
            .filter_map(std::future::ready)
            .collect()
            .await
    }

    /// Says, for each version of the function compiled and in the route table, that this
    /// node serves it. Each version the store could not take is logged; the last such
    /// error is returned, for the caller to try again.
    pub(crate) async fn report_ready(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
    ) -> Result<(), StoreError> {
        let Some(entry) = self.entry(tenant, name) else {
            return Ok(());
        };
        // All at once: each is a write to the store, a round trip to another region's
        // origin away, and a function may keep many versions loaded.
        let said = entry
            .versions
            .iter()
            .filter(|(_, slot)| slot.compiled.initialized())
            .map(|(version, _)| async move {
                let said = self
                    .store
                    .set_ready(tenant, name, *version, &self.node_id)
                    .await;
                (*version, said)
            });
        let mut result = Ok(());
        for (version, said) in futures::future::join_all(said).await {
            if let Err(e) = said {
                tracing::warn!(function = %name, %version, error = %e, "cannot say the version is ready here; trying again");
                result = Err(e);
            }
        }
        result
    }
}
