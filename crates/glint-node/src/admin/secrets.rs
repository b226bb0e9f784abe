//! Secrets through the admin API. Values go in and never come out: listing shows names
//! and times only.

use std::sync::Arc;

use axum::extract::State;
use glint_store::SecretRecord;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::extract::{Json, Path};
use super::openapi::ErrorBody;
use crate::error::ApiError;
use crate::node::Node;

/// Largest secret value, in bytes.
const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The tenant's secrets: names and times.
#[derive(Serialize, ToSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretRecord>,
}

/// The tenant's secrets: names and when each was set, never values.
#[utoipa::path(
    get,
    path = "/api/v1/secrets",
    tag = "secrets",
    responses((status = 200, description = "The secrets", body = SecretList)),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<SecretList>, ApiError> {
    let secrets = node.store.secrets(&caller.tenant).await?;
    Ok(Json(SecretList { secrets }))
}

/// A secret's value.
#[derive(Deserialize, ToSchema)]
pub struct SecretBody {
    /// At most 64 KiB.
    value: String,
}

/// The `{name}` of a secret's path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretPath {
    /// The secret: letters, digits and '_', not starting with a digit (it becomes an env
    /// var of the functions that name it).
    #[param(pattern = "^[A-Za-z_][A-Za-z0-9_]*$")]
    pub name: String,
}

/// Sets a secret, sealed at rest; functions whose manifests name it see it as an env var.
#[utoipa::path(
    put,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    params(SecretPath),
    request_body = SecretBody,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "The name is invalid (`invalid_name`)", body = ErrorBody),
        (status = 413, description = "The value is above 64 KiB (`limit_exceeded`)", body = ErrorBody),
    ),
)]
pub async fn set(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(SecretPath { name }): Path<SecretPath>,
    Json(body): Json<SecretBody>,
) -> Result<StatusCode, ApiError> {
    if !glint_runtime::manifest::is_env_name(&name) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "secret name {name:?} is invalid; use letters, digits and '_', not starting with a digit (it becomes an env var)"
            ),
        ));
    }
    if body.value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit_exceeded",
            format!(
                "a secret may be at most {MAX_SECRET_BYTES} bytes; keep large data in a KV store"
            ),
        ));
    }
    node.set_secret(&caller.tenant, &name, &body.value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a secret.
#[utoipa::path(
    delete,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    params(SecretPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such secret (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(SecretPath { name }): Path<SecretPath>,
) -> Result<StatusCode, ApiError> {
    node.delete_secret(&caller.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
