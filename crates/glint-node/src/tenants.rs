//! The tenants a node refuses to serve (the suspended ones and those being deleted),
//! and each tenant's run-time quotas, loaded at start and again on each change of a
//! tenant, so the data plane and the admin API check them without a store read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use glint_store::{TenantId, TenantStatus, Tenants};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use http::StatusCode;

use crate::error::ApiError;

/// What the node holds of each tenant that is not plainly active and unlimited: one
/// map, so a request looks its tenant up once (one atomic load and no lookup while no
/// tenant has anything here, as on a single-user node).
#[derive(Default)]
pub struct TenantTable(ArcSwap<HashMap<TenantId, Arc<TenantRuntime>>>);

/// A tenant's status and its run-time quotas on this node.
pub struct TenantRuntime {
    status: TenantStatus,
    rate: Option<Rate>,
    slots: Option<Slots>,
}

/// A tenant's instances on this node: a permit per running guest.
pub struct Slots {
    pub limit: u64,
    pub free: Arc<tokio::sync::Semaphore>,
}

/// A tenant's requests per second on this node: a token bucket that holds a second's
/// worth.
struct Rate {
    per_second: u64,
    bucket: Arc<DefaultDirectRateLimiter>,
}

impl Rate {
    fn new(per_second: u64) -> Rate {
        let n = std::num::NonZeroU32::new(per_second.clamp(1, u64::from(u32::MAX)) as u32)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Rate {
            per_second,
            bucket: Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(n))),
        }
    }
}

impl TenantRuntime {
    /// `403 tenant_suspended` or `403 tenant_deleting` unless the tenant is active.
    fn check_active(&self, tenant: &TenantId) -> Result<(), ApiError> {
        match self.status {
            TenantStatus::Active => Ok(()),
            TenantStatus::Suspended => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "tenant_suspended",
                format!(
                    "tenant '{tenant}' is suspended by the node's operator; its data is kept, and its keys \
                     still read it; ask the operator to resume it"
                ),
            )),
            TenantStatus::Deleting => Err(deleting(tenant)),
        }
    }

    /// The tenant's instance slots on this node, if it has a limit.
    pub fn slots(&self) -> Option<&Slots> {
        self.slots.as_ref()
    }
}

impl TenantTable {
    /// Loads every tenant's status and quotas; returns the tenants that exist.
    pub async fn reload(&self, store: &dyn Tenants) -> glint_store::Result<HashSet<TenantId>> {
        let tenants = store.tenants().await?;
        let old = self.0.load();
        let mut table = HashMap::new();
        for t in &tenants {
            let quotas = t.effective_quotas();
            let before = old.get(&t.id);
            // A rate or a limit unchanged keeps its bucket, as full or empty as it is,
            // and its semaphore, whose permits running guests hold.
            let rate = quotas.requests_per_second.map(|per_second| {
                match before.and_then(|b| b.rate.as_ref()) {
                    Some(r) if r.per_second == per_second => Rate {
                        per_second,
                        bucket: r.bucket.clone(),
                    },
                    _ => Rate::new(per_second),
                }
            });
            let slots = quotas.instances_per_node.map(|limit| {
                match before.and_then(|b| b.slots.as_ref()) {
                    Some(s) if s.limit == limit => Slots {
                        limit,
                        free: s.free.clone(),
                    },
                    _ => Slots {
                        limit,
                        free: Arc::new(tokio::sync::Semaphore::new(
                            limit.min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize,
                        )),
                    },
                }
            });
            if t.status != TenantStatus::Active || rate.is_some() || slots.is_some() {
                let runtime = TenantRuntime {
                    status: t.status,
                    rate,
                    slots,
                };
                table.insert(t.id.clone(), Arc::new(runtime));
            }
        }
        self.0.store(Arc::new(table));
        Ok(tenants.into_iter().map(|t| t.id).collect())
    }

    /// Admits a request to one of the tenant's functions: refused unless the tenant is
    /// active, and `429 quota_exceeded` with `Retry-After` when its rate's bucket is
    /// empty. Returns what the request needs of the tenant later (its instance slots).
    pub fn admit(&self, tenant: &TenantId) -> Result<Option<Arc<TenantRuntime>>, ApiError> {
        let table = self.0.load();
        if table.is_empty() {
            return Ok(None);
        }
        let Some(runtime) = table.get(tenant) else {
            return Ok(None);
        };
        runtime.check_active(tenant)?;
        if let Some(rate) = &runtime.rate {
            rate.bucket.check().map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut error = ApiError::quota(
                    "requests_per_second",
                    format!(
                        "tenant '{tenant}' is past its quota of {} requests per second on this node \
                         (requests_per_second); retry after the time in Retry-After, or ask the \
                         operator to raise it",
                        rate.per_second
                    ),
                );
                error.status = StatusCode::TOO_MANY_REQUESTS;
                error.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u32);
                error
            })?;
        }
        Ok(Some(runtime.clone()))
    }

    /// `403 tenant_suspended` or `403 tenant_deleting` for a tenant that is not active:
    /// for its keys' writes.
    pub fn check_active(&self, tenant: &TenantId) -> Result<(), ApiError> {
        match self.0.load().get(tenant) {
            Some(runtime) => runtime.check_active(tenant),
            None => Ok(()),
        }
    }

    /// `403 tenant_deleting` for a tenant being deleted: its keys can no longer read.
    pub fn check_readable(&self, tenant: &TenantId) -> Result<(), ApiError> {
        match self.0.load().get(tenant) {
            Some(runtime) if runtime.status == TenantStatus::Deleting => Err(deleting(tenant)),
            _ => Ok(()),
        }
    }
}

fn deleting(tenant: &TenantId) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "tenant_deleting",
        format!("tenant '{tenant}' is being deleted by the node's operator, with all its data"),
    )
}
