//! Secrets through the admin API. Values go in and never come out: listing shows names
//! and times only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::error::ApiError;
use crate::node::Node;

/// Largest secret value, in bytes.
const MAX_SECRET_BYTES: usize = 64 * 1024;

pub async fn list(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let secrets = node.store.secrets(&caller.tenant).await?;
    Ok(Json(json!({ "secrets": secrets })))
}

#[derive(Deserialize)]
pub struct SecretBody {
    value: String,
}

pub async fn set(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
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

pub async fn delete(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    node.delete_secret(&caller.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
