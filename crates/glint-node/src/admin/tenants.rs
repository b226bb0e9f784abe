//! `/api/v1/tenants`: the operator makes tenants and their keys; `/api/v1/tenant`: any
//! key reads its own tenant.

use std::sync::Arc;

use axum::extract::State;
use glint_store::{KvRemoved, Quotas, Removed, Role, TenantId, TenantRecord, TenantStatus};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::extract::{Json, Path};
use super::keys::{CreatedKey, NewKey, check_role, make_key};
use super::openapi::ErrorBody;
use super::usage::{Totals, recent_months};
use crate::error::ApiError;
use crate::node::Node;

/// The name of the key a new tenant gets.
const FIRST_KEY_NAME: &str = "admin (first key)";

/// Every tenant.
#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantRecord>,
}

/// Every tenant of the store, by name.
#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    responses((status = 200, description = "The tenants", body = TenantList)),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    _caller: Caller,
) -> Result<Json<TenantList>, ApiError> {
    Ok(Json(TenantList {
        tenants: node.store.tenants().await?,
    }))
}

/// A tenant to make.
#[derive(Deserialize, ToSchema)]
pub struct NewTenant {
    /// 1 to 63 lowercase letters, digits or '-', not starting or ending with '-': it
    /// becomes part of host names.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
}

/// A new tenant and its first admin key.
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: TenantId,
    /// The tenant's first admin key; it is shown only this once.
    pub key: String,
    pub key_id: String,
    pub note: String,
}

/// Makes a tenant, with an admin key that manages it and nothing else.
#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    request_body = NewTenant,
    responses(
        (status = 201, description = "The tenant and its first admin key, shown this once", body = CreatedTenant),
        (status = 400, description = "The name is invalid (`invalid_name`)", body = ErrorBody),
        (status = 409, description = "A tenant of that name exists (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn create(
    State(node): State<Arc<Node>>,
    _caller: Caller,
    Json(new): Json<NewTenant>,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    let tenant = TenantId::new_tenant(&new.name)?;
    // A name used before starts empty: KV stores a deploy racing its deletion made go.
    if let Err(glint_store::StoreError::NotFound(_)) = node.store.tenant(&tenant).await {
        node.kv.delete_stores(&tenant).await?;
    }
    node.store.create_tenant(&tenant).await?;
    // Should this fail, the tenant stays, and `POST /api/v1/tenants/{t}/keys` gives it
    // a key.
    let key = make_key(&node, &tenant, FIRST_KEY_NAME, Role::Admin).await?;
    let mut note = "the key is shown only once; store it now".to_string();
    match node.tenant_base(&tenant) {
        Some(base) => note.push_str(&format!("; its functions answer on {base}")),
        None => note.push_str(
            "; this node has no --base-domain, so the tenant's functions answer on no host until it has one",
        ),
    }
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            tenant,
            key: key.key,
            key_id: key.id,
            note,
        }),
    ))
}

/// The `{tenant}` of a tenant's paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's name.
    #[param(value_type = TenantId)]
    pub tenant: String,
}

/// A tenant, with the quotas that hold for it.
#[derive(Serialize, ToSchema)]
pub struct TenantView {
    #[serde(flatten)]
    pub record: TenantRecord,
    /// Its own quotas, then the node's defaults; a missing one is no limit.
    pub effective_quotas: Quotas,
}

impl From<TenantRecord> for TenantView {
    fn from(record: TenantRecord) -> Self {
        TenantView {
            effective_quotas: record.effective_quotas(),
            record,
        }
    }
}

/// One tenant.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}",
    tag = "tenants",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show(
    State(node): State<Arc<Node>>,
    _caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant: TenantId = tenant.parse()?;
    Ok(Json(node.store.tenant(&tenant).await?.into()))
}

/// The quotas to set: each left out is the node's default; an unknown one is refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaUpdate {
    pub functions: Option<u64>,
    pub versions_per_function: Option<u64>,
    pub component_bytes: Option<u64>,
    pub requests_per_second: Option<u64>,
    pub instances_per_node: Option<u64>,
}

impl From<QuotaUpdate> for Quotas {
    fn from(q: QuotaUpdate) -> Quotas {
        Quotas {
            functions: q.functions,
            versions_per_function: q.versions_per_function,
            component_bytes: q.component_bytes,
            requests_per_second: q.requests_per_second,
            instances_per_node: q.instances_per_node,
        }
    }
}

/// Sets a tenant's quotas: those in the body replace its own, and those left out are
/// the node's defaults again.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{tenant}/quotas",
    tag = "tenants",
    params(TenantPath),
    request_body = QuotaUpdate,
    responses(
        (status = 200, description = "The tenant with its quotas", body = TenantView),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn set_quotas(
    State(node): State<Arc<Node>>,
    _caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Json(quotas): Json<QuotaUpdate>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant: TenantId = tenant.parse()?;
    let record = node.store.set_quotas(&tenant, quotas.into()).await?;
    // At once on this node; the others follow the change.
    node.tenants.reload(node.store.as_ref()).await?;
    Ok(Json(record.into()))
}

/// What deleting a tenant removed.
#[derive(Serialize, ToSchema)]
pub struct DeletedTenant {
    pub tenant: TenantId,
    /// What went from the store of records.
    pub removed: Removed,
    /// The KV stores that went, with their keys and bytes.
    pub kv: KvRemoved,
    /// The tenant's usage this month and last month as it stood, this month first: its
    /// usage goes with it, so this is the last word on what to bill.
    pub final_usage: Vec<Totals>,
    /// False while a region's logs or usage could not be reached
    /// (`removed.pending_regions`): the tenant stays, being deleted, and the same call
    /// finishes it.
    pub complete: bool,
}

/// Deletes a tenant with everything it has: functions, versions, components, KV
/// stores, secrets, keys, logs and usage. From the first step its functions stop
/// serving and its keys stop working; a deletion cut short is finished by calling
/// again.
#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{tenant}",
    tag = "tenants",
    params(TenantPath),
    responses(
        (status = 200, description = "What was removed, and the final usage", body = DeletedTenant),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
        (status = 409, description = "The operator's own tenant (`own_tenant`)", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> Result<Json<DeletedTenant>, ApiError> {
    let tenant: TenantId = tenant.parse()?;
    not_own(&caller, &tenant, "deleted")?;
    let before = node.store.tenant(&tenant).await?;
    let final_usage = recent_months(&node, &tenant).await?;
    if before.status != TenantStatus::Deleting {
        node.store
            .set_tenant_status(&tenant, TenantStatus::Deleting)
            .await?;
    }
    // From here its functions and keys are refused on this node; the others follow the
    // change.
    node.tenants.reload(node.store.as_ref()).await?;
    let functions = node.store.functions(&tenant).await?;
    let kv = node.kv.delete_stores(&tenant).await?;
    let removed = node.store.delete_tenant(&tenant).await?;
    for function in functions {
        node.forget_function(&tenant, &function.name).await;
    }
    node.meter.discard_tenant(&tenant);
    node.keys.reload(node.store.as_ref()).await?;
    node.tenants.reload(node.store.as_ref()).await?;
    Ok(Json(DeletedTenant {
        complete: removed.pending_regions.is_empty(),
        tenant,
        removed,
        kv,
        final_usage,
    }))
}

/// `409 own_tenant` for the caller's own tenant, which is never `what` (suspended,
/// deleted).
fn not_own(caller: &Caller, tenant: &TenantId, what: &str) -> Result<(), ApiError> {
    if tenant == &caller.tenant {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "own_tenant",
            format!("'{tenant}' is the operator's own tenant, which is never {what}"),
        ));
    }
    Ok(())
}

/// Makes a key of a tenant: its admin's lost key replaced, say.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/keys",
    tag = "tenants",
    params(TenantPath),
    request_body = NewKey,
    responses(
        (status = 201, description = "The new key, shown this once", body = CreatedKey),
        (status = 403, description = "An operator key outside the operator's tenant (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn create_key(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Json(new): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let tenant: TenantId = tenant.parse()?;
    let (role, name) = new.checked()?;
    check_role(&caller, &tenant, role)?;
    node.store.tenant(&tenant).await?;
    Ok((
        StatusCode::CREATED,
        Json(make_key(&node, &tenant, name, role).await?),
    ))
}

/// Suspends a tenant: its functions answer 403 `tenant_suspended` on every node, and
/// its keys may read but not change anything. Its data stays.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/suspend",
    tag = "tenants",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant, suspended", body = TenantRecord),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
        (status = 409, description = "The operator's own tenant (`own_tenant`)", body = ErrorBody),
    ),
)]
pub async fn suspend(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> Result<Json<TenantRecord>, ApiError> {
    set_status(&node, &caller, &tenant, TenantStatus::Suspended).await
}

/// Resumes a suspended tenant.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{tenant}/resume",
    tag = "tenants",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant, active", body = TenantRecord),
        (status = 404, description = "No such tenant (`not_found`)", body = ErrorBody),
        (status = 409, description = "The operator's own tenant (`own_tenant`)", body = ErrorBody),
    ),
)]
pub async fn resume(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> Result<Json<TenantRecord>, ApiError> {
    set_status(&node, &caller, &tenant, TenantStatus::Active).await
}

async fn set_status(
    node: &Node,
    caller: &Caller,
    tenant: &str,
    status: TenantStatus,
) -> Result<Json<TenantRecord>, ApiError> {
    let tenant: TenantId = tenant.parse()?;
    not_own(caller, &tenant, "suspended")?;
    if node.store.tenant(&tenant).await?.status == TenantStatus::Deleting {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "tenant_deleting",
            format!(
                "tenant '{tenant}' is being deleted; finish it with `glint tenants delete {tenant} --yes`"
            ),
        ));
    }
    let record = node.store.set_tenant_status(&tenant, status).await?;
    // At once on this node; the others follow the change.
    node.tenants.reload(node.store.as_ref()).await?;
    Ok(Json(record))
}

/// The tenant of the calling key.
#[utoipa::path(
    get,
    path = "/api/v1/tenant",
    tag = "tenants",
    responses((status = 200, description = "The caller's tenant", body = TenantView)),
)]
pub async fn own(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(node.store.tenant(&caller.tenant).await?.into()))
}
