//! `/api/v1/keys`: create, list and revoke API keys (admin role).

use std::sync::Arc;

use axum::extract::State;
use glint_store::{ApiKeyRecord, Role, TenantId};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::extract::{Json, Path};
use super::openapi::ErrorBody;
use crate::error::ApiError;
use crate::keys::{generate_key, hash_key, key_prefix};
use crate::node::Node;

/// A key to make.
#[derive(Deserialize, ToSchema)]
pub struct NewKey {
    /// What the key is for, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// `admin`, `deploy` or `read`; `operator` for an operator's key in its own tenant.
    /// At most the calling key's own role.
    #[schema(value_type = Role)]
    pub role: String,
}

/// Refuses a key above the calling key's role, and an operator key outside the
/// operator's tenant.
pub fn check_role(caller: &Caller, tenant: &TenantId, role: Role) -> Result<(), ApiError> {
    if role > caller.role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this API key has role '{}' and can make keys of that role or below, not '{role}'",
                caller.role
            ),
        ));
    }
    if role == Role::Operator && tenant.as_str() != glint_store::DEFAULT_TENANT {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "operator keys belong to the operator's tenant 'default', not '{tenant}'; make an admin key for a tenant"
            ),
        ));
    }
    Ok(())
}

/// A new key: shown once.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key itself; it is shown only this once.
    pub key: String,
    pub id: String,
    pub name: String,
    pub role: Role,
    pub note: String,
}

/// The tenant's keys, never the keys themselves.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKeyRecord>,
}

/// The `{id}` of a key's path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key's id, such as `key_0123456789ab`.
    pub id: String,
}

impl NewKey {
    /// The role and the trimmed name, checked.
    pub fn checked(&self) -> Result<(Role, &str), ApiError> {
        let role: Role = self.role.parse()?;
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return Err(ApiError::bad_request(
                "invalid_name",
                "give the key a name of 1 to 100 characters",
            ));
        }
        Ok((role, self.name.trim()))
    }
}

/// Makes an API key of the caller's tenant.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    request_body = NewKey,
    responses(
        (status = 201, description = "The new key, shown this once", body = CreatedKey),
        (status = 400, description = "The name or role is invalid (`invalid_name`)", body = ErrorBody),
        (status = 403, description = "The role is above the calling key's (`forbidden`)", body = ErrorBody),
    ),
)]
pub async fn create(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Json(new): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let (role, name) = new.checked()?;
    check_role(&caller, &caller.tenant, role)?;
    let created = make_key(&node, &caller.tenant, name, role).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Makes a key of `tenant` and puts it to work on this node at once.
pub async fn make_key(
    node: &Node,
    tenant: &TenantId,
    name: &str,
    role: Role,
) -> Result<CreatedKey, ApiError> {
    let key = generate_key();
    let record = node
        .store
        .create_key(tenant, name, role, &hash_key(&key), &key_prefix(&key))
        .await?;
    node.keys.reload(node.store.as_ref()).await?;
    Ok(CreatedKey {
        key,
        id: record.id,
        name: record.name,
        role: record.role,
        note: "the key is shown only once; store it now".to_string(),
    })
}

/// The tenant's API keys: names, roles and prefixes, never the keys.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    responses((status = 200, description = "The keys", body = KeyList)),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    let keys = node.store.keys(&caller.tenant).await?;
    Ok(Json(KeyList { keys }))
}

/// Revokes a key; at once on this node, and on the others as they follow the change.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    params(KeyPath),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "A key of a role above the calling key's (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such key (`not_found`)", body = ErrorBody),
        (status = 409, description = "The key making the call (`revoking_own_key`)", body = ErrorBody),
    ),
)]
pub async fn revoke(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(KeyPath { id }): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    if id == caller.key_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "revoking_own_key",
            "this is the key making the call; revoke it with another admin key",
        ));
    }
    // An admin of the operator's tenant cannot take the operator's keys away.
    let target = node
        .store
        .keys(&caller.tenant)
        .await?
        .into_iter()
        .find(|k| k.id == id);
    if let Some(target) = target
        && target.role > caller.role
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "key '{id}' has role '{}', above this key's '{}'; a key revokes keys of its own role or below",
                target.role, caller.role
            ),
        ));
    }
    node.store.revoke_key(&caller.tenant, &id).await?;
    node.keys.reload(node.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
