//! KV stores through the admin API: list stores, and get, set, delete and list keys.
//!
//! Values travel as raw bytes (`application/octet-stream`), so any value a guest wrote
//! reads back unchanged. Keys may hold '/', so the key is the rest of the path.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use glint_store::KvStoreName;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::error::ApiError;
use crate::node::Node;

fn store_name(raw: &str) -> Result<KvStoreName, ApiError> {
    Ok(raw.parse()?)
}

pub async fn stores(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let stores = node.kv.stores(&caller.tenant).await?;
    let limits = node.kv.limits();
    Ok(Json(json!({
        "stores": stores,
        "limits": {
            "max_key_bytes": limits.max_key_bytes,
            "max_value_bytes": limits.max_value_bytes,
            "store_quota_bytes": limits.store_quota_bytes,
        },
    })))
}

pub async fn create_store(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(store): Path<String>,
) -> Result<StatusCode, ApiError> {
    node.kv
        .create_store(&caller.tenant, &store_name(&store)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ListQuery {
    prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn keys(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(store): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = node
        .kv
        .list_keys(
            &caller.tenant,
            &store_name(&store)?,
            q.prefix.as_deref(),
            q.cursor.as_deref(),
            q.limit.unwrap_or(1000),
        )
        .await?;
    Ok(Json(json!(page)))
}

pub async fn get(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((store, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let store = store_name(&store)?;
    match node.kv.get(&caller.tenant, &store, &key).await? {
        Some(v) => Ok(([(CONTENT_TYPE, "application/octet-stream")], v.value).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!(
                "KV store '{store}' has no key {key:?}; `glint kv list {store}` shows its keys"
            ),
        )),
    }
}

pub async fn set(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((store, key)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    node.kv
        .set(&caller.tenant, &store_name(&store)?, &key, body.to_vec())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((store, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    node.kv
        .delete(&caller.tenant, &store_name(&store)?, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
