//! KV stores through the admin API: list stores, and get, set, delete and list keys.
//!
//! Values travel as raw bytes (`application/octet-stream`), so any value a guest wrote
//! reads back unchanged. Keys may hold '/', so the key is the rest of the path.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use glint_store::{KeyPage, KvStoreName, KvStoreRecord};
use http::StatusCode;
use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::extract::{Json, Path, Query, RawBody};
use super::openapi::ErrorBody;
use crate::error::ApiError;
use crate::node::Node;

fn store_name(raw: &str) -> Result<KvStoreName, ApiError> {
    Ok(raw.parse()?)
}

/// The tenant's KV stores, and the limits every write meets.
#[derive(Serialize, ToSchema)]
pub struct StoreList {
    pub stores: Vec<KvStoreRecord>,
    pub limits: KvLimitsInfo,
}

/// What KV enforces on every write.
#[derive(Serialize, ToSchema)]
pub struct KvLimitsInfo {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Keys plus values in one store.
    pub store_quota_bytes: u64,
}

/// The `{store}` of a store's paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StorePath {
    /// The store's name.
    #[param(value_type = KvStoreName)]
    pub store: String,
}

/// The `{store}` and `{key}` of a key's paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The store's name.
    #[param(value_type = KvStoreName)]
    pub store: String,
    /// The key: the rest of the path, so it may hold '/'.
    pub key: String,
}

/// The tenant's KV stores with their sizes, and KV's limits.
#[utoipa::path(
    get,
    path = "/api/v1/kv",
    tag = "kv",
    responses((status = 200, description = "The stores", body = StoreList)),
)]
pub async fn stores(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<StoreList>, ApiError> {
    let stores = node.kv.stores(&caller.tenant).await?;
    let limits = node.kv.limits();
    Ok(Json(StoreList {
        stores,
        limits: KvLimitsInfo {
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
            store_quota_bytes: limits.store_quota_bytes,
        },
    }))
}

/// Makes a KV store; one that exists stays as it is.
#[utoipa::path(
    put,
    path = "/api/v1/kv/{store}",
    tag = "kv",
    params(StorePath),
    responses(
        (status = 204, description = "The store exists"),
        (status = 400, description = "The name is invalid (`invalid_name`)", body = ErrorBody),
    ),
)]
pub async fn create_store(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(StorePath { store }): Path<StorePath>,
) -> Result<StatusCode, ApiError> {
    node.kv
        .create_store(&caller.tenant, &store_name(&store)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only keys that start with this.
    prefix: Option<String>,
    /// The `cursor` of the page before, to get the next one.
    cursor: Option<String>,
    /// Keys in a page (1000 unless given).
    limit: Option<usize>,
}

/// A page of a store's keys, in key order.
#[utoipa::path(
    get,
    path = "/api/v1/kv/{store}/keys",
    tag = "kv",
    params(StorePath, ListQuery),
    responses(
        (status = 200, description = "A page of keys", body = KeyPage),
        (status = 400, description = "The name is invalid (`invalid_name`)", body = ErrorBody),
        (status = 404, description = "No such store (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn keys(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(StorePath { store }): Path<StorePath>,
    Query(q): Query<ListQuery>,
) -> Result<Json<KeyPage>, ApiError> {
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
    Ok(Json(page))
}

/// A key's value, as the bytes written.
#[utoipa::path(
    get,
    path = "/api/v1/kv/{store}/keys/{*key}",
    tag = "kv",
    params(KeyPath),
    responses(
        (status = 200, description = "The value", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "The name is invalid (`invalid_name`)", body = ErrorBody),
        (status = 404, description = "No such store or key (`not_found`, `key_not_found`)", body = ErrorBody),
    ),
)]
pub async fn get(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(KeyPath { store, key }): Path<KeyPath>,
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

/// Sets a key to the request's bytes.
#[utoipa::path(
    put,
    path = "/api/v1/kv/{store}/keys/{*key}",
    tag = "kv",
    params(KeyPath),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The value"),
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "The name or key is invalid", body = ErrorBody),
        (status = 404, description = "No such store (`not_found`)", body = ErrorBody),
        (status = 413, description = "The key, the value or the store is above its limit (`limit_exceeded`)", body = ErrorBody),
    ),
)]
pub async fn set(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(KeyPath { store, key }): Path<KeyPath>,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    node.kv
        .set(&caller.tenant, &store_name(&store)?, &key, body.to_vec())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a key; one that is not there is no error.
#[utoipa::path(
    delete,
    path = "/api/v1/kv/{store}/keys/{*key}",
    tag = "kv",
    params(KeyPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The name or key is invalid", body = ErrorBody),
        (status = 404, description = "No such store (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(KeyPath { store, key }): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    node.kv
        .delete(&caller.tenant, &store_name(&store)?, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
