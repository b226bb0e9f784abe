//! `/api/v1/keys`: create, list and revoke API keys (admin role).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use glint_store::Role;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::error::ApiError;
use crate::keys::{generate_key, hash_key, key_prefix};
use crate::node::Node;

#[derive(Deserialize)]
pub struct NewKey {
    pub name: String,
    pub role: String,
}

impl NewKey {
    /// The role and the trimmed name, checked.
    pub fn checked(&self) -> Result<(Role, &str), ApiError> {
        let role: Role = self.role.parse()?;
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(ApiError::bad_request(
                "invalid_name",
                "give the key a name of 1 to 100 characters",
            ));
        }
        Ok((role, self.name.trim()))
    }
}

pub async fn create(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Json(new): Json<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (role, _) = new.checked()?;
    let key = generate_key();
    let record = node
        .store
        .create_key(
            &caller.tenant,
            new.name.trim(),
            role,
            &hash_key(&key),
            &key_prefix(&key),
        )
        .await?;
    node.keys.reload(node.store.as_ref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "key": key, "id": record.id, "name": record.name, "role": record.role, "note": "the key is shown only once; store it now" }),
        ),
    ))
}

pub async fn list(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let keys = node.store.keys(&caller.tenant).await?;
    Ok(Json(json!({ "keys": keys })))
}

pub async fn revoke(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if id == caller.key_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "revoking_own_key",
            "this is the key making the call; revoke it with another admin key",
        ));
    }
    node.store.revoke_key(&caller.tenant, &id).await?;
    node.keys.reload(node.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
