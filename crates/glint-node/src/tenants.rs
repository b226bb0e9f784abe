//! The tenants a node refuses to serve: the suspended ones and those being deleted,
//! loaded at start and again on each change of a tenant, so the data plane and the
//! admin API check them without a store read.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use glint_store::{TenantId, TenantStatus, Tenants};
use http::StatusCode;

use crate::error::ApiError;

#[derive(Default)]
pub struct TenantTable {
    /// Every tenant that is not active, with its status.
    inactive: ArcSwap<HashMap<TenantId, TenantStatus>>,
}

impl TenantTable {
    pub async fn reload(&self, store: &dyn Tenants) -> glint_store::Result<()> {
        let inactive = store
            .tenants()
            .await?
            .into_iter()
            .filter(|t| t.status != TenantStatus::Active)
            .map(|t| (t.id, t.status))
            .collect();
        self.inactive.store(Arc::new(inactive));
        Ok(())
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
