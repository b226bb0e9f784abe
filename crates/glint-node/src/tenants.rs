//! The tenants a node refuses to serve: the suspended ones, loaded at start and again
//! on each change of a tenant, so the data plane and the admin API check them without
//! a store read.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use glint_store::{TenantId, TenantStatus, Tenants};
use http::StatusCode;

use crate::error::ApiError;

#[derive(Default)]
pub struct TenantTable {
    suspended: ArcSwap<HashSet<TenantId>>,
}

impl TenantTable {
    pub async fn reload(&self, store: &dyn Tenants) -> glint_store::Result<()> {
        let suspended = store
            .tenants()
            .await?
            .into_iter()
            .filter(|t| t.status == TenantStatus::Suspended)
            .map(|t| t.id)
            .collect();
        self.suspended.store(Arc::new(suspended));
        Ok(())
    }

    /// `403 tenant_suspended` for a suspended tenant. One atomic load when none is.
    pub fn check_active(&self, tenant: &TenantId) -> Result<(), ApiError> {
        let suspended = self.suspended.load();
        if suspended.is_empty() || !suspended.contains(tenant) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant_suspended",
            format!(
                "tenant '{tenant}' is suspended by the node's operator; its data is kept, and its keys \
                 still read it; ask the operator to resume it"
            ),
        ))
    }
}
