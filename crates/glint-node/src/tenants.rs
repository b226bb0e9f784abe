//! The tenants a node refuses to serve (the suspended ones and those being deleted),
//! and each tenant's request rate, loaded at start and again on each change of a
//! tenant, so the data plane and the admin API check them without a store read.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use glint_store::{TenantId, TenantStatus, Tenants};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use http::StatusCode;

use crate::error::ApiError;

#[derive(Default)]
pub struct TenantTable {
    /// Every tenant that is not active, with its status.
    inactive: ArcSwap<HashMap<TenantId, TenantStatus>>,
    /// The request rate of each tenant that has one.
    rates: ArcSwap<HashMap<TenantId, Arc<Rate>>>,
    /// The instances each tenant that has a limit may run at once.
    instances: ArcSwap<HashMap<TenantId, Arc<Slots>>>,
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
    bucket: DefaultDirectRateLimiter,
}

impl Rate {
    fn new(per_second: u64) -> Rate {
        let n = std::num::NonZeroU32::new(per_second.clamp(1, u64::from(u32::MAX)) as u32)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Rate {
            per_second,
            bucket: DefaultDirectRateLimiter::direct(Quota::per_second(n)),
        }
    }
}

impl TenantTable {
    pub async fn reload(&self, store: &dyn Tenants) -> glint_store::Result<()> {
        let tenants = store.tenants().await?;
        let inactive = tenants
            .iter()
            .filter(|t| t.status != TenantStatus::Active)
            .map(|t| (t.id.clone(), t.status))
            .collect();
        self.inactive.store(Arc::new(inactive));
        // A tenant whose rate is unchanged keeps its bucket, as full or empty as it is.
        let old = self.rates.load();
        let rates = tenants
            .iter()
            .filter_map(|t| {
                let per_second = t.effective_quotas().requests_per_second?;
                let rate = match old.get(&t.id) {
                    Some(rate) if rate.per_second == per_second => rate.clone(),
                    _ => Arc::new(Rate::new(per_second)),
                };
                Some((t.id.clone(), rate))
            })
            .collect();
        self.rates.store(Arc::new(rates));
        // Kept while the limit is the same: its permits are held by running guests.
        let old = self.instances.load();
        let instances = tenants
            .iter()
            .filter_map(|t| {
                let limit = t.effective_quotas().instances_per_node?;
                let slots = match old.get(&t.id) {
                    Some(slots) if slots.limit == limit => slots.clone(),
                    _ => Arc::new(Slots {
                        limit,
                        free: Arc::new(tokio::sync::Semaphore::new(
                            limit.min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize,
                        )),
                    }),
                };
                Some((t.id.clone(), slots))
            })
            .collect();
        self.instances.store(Arc::new(instances));
        Ok(())
    }

    /// The tenant's instance slots on this node, if it has a limit.
    pub fn slots(&self, tenant: &TenantId) -> Option<Arc<Slots>> {
        let instances = self.instances.load();
        if instances.is_empty() {
            return None;
        }
        instances.get(tenant).cloned()
    }

    /// Takes one request of the tenant's rate, or `429 quota_exceeded` with
    /// `Retry-After` when its bucket is empty.
    pub fn admit(&self, tenant: &TenantId) -> Result<(), ApiError> {
        let rates = self.rates.load();
        if rates.is_empty() {
            return Ok(());
        }
        let Some(rate) = rates.get(tenant) else {
            return Ok(());
        };
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
        })
    }

    /// `403 tenant_suspended` or `403 tenant_deleting` for a tenant that is not active:
    /// for its functions, and for its keys' writes. One atomic load when all are active.
    pub fn check_active(&self, tenant: &TenantId) -> Result<(), ApiError> {
        let inactive = self.inactive.load();
        if inactive.is_empty() {
            return Ok(());
        }
        match inactive.get(tenant) {
            None | Some(TenantStatus::Active) => Ok(()),
            Some(TenantStatus::Suspended) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "tenant_suspended",
                format!(
                    "tenant '{tenant}' is suspended by the node's operator; its data is kept, and its keys \
                     still read it; ask the operator to resume it"
                ),
            )),
            Some(TenantStatus::Deleting) => Err(deleting(tenant)),
        }
    }

    /// `403 tenant_deleting` for a tenant being deleted: its keys can no longer read.
    pub fn check_readable(&self, tenant: &TenantId) -> Result<(), ApiError> {
        match self.inactive.load().get(tenant) {
            Some(TenantStatus::Deleting) => Err(deleting(tenant)),
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
