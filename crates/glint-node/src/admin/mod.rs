//! The admin API: JSON under `/api/v1`, on its own listener.
//!
//! Every route but `/healthz`, `/readyz` and `/version` needs `Authorization: Bearer
//! <key>`. The [`auth`] middleware checks the key once and hands the handler a
//! [`Caller`] with the key's tenant and role; routes are grouped by the role they need.

mod functions;
mod keys;
mod kv;
mod logs;
pub use functions::{AliasBody, EnvBody, check_env_key};
pub use keys::NewKey;
pub use logs::parse_time;
mod secrets;
mod usage;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use glint_store::{Role, TenantId};
use http::StatusCode;
use serde_json::json;

use crate::error::ApiError;
use crate::node::Node;
use crate::session::session_cookie;

/// Largest component upload the API accepts.
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.json_response().into_response()
    }
}

/// Who is calling, as established by their API key.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
    pub key_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route is missing the auth middleware"))
    }
}

/// Most of a refused request's body that is still read, so the client, still sending,
/// gets the refusal instead of a reset connection.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

async fn auth(
    State((node, needed)): State<(Arc<Node>, Role)>,
    mut req: Request,
    next: Next,
) -> Response {
    // The dashboard's cookie only reads: a page elsewhere on this host (a function, on
    // the data plane) cannot make a signed-in browser deploy or delete anything.
    let cookie_allowed = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    match caller(&node, needed, req.headers(), cookie_allowed) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(error) => {
            let _ = axum::body::to_bytes(req.into_body(), DRAIN_BYTES).await;
            error.into_response()
        }
    }
}

/// Who the request's key belongs to, if the key is live and its role is enough.
fn caller(
    node: &Node,
    needed: Role,
    headers: &http::HeaderMap,
    cookie_allowed: bool,
) -> Result<Caller, ApiError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer = header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim);
    let cookie = cookie_allowed.then(|| session_cookie(headers)).flatten();
    let Some(key) = bearer.or(cookie) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing API key: send `Authorization: Bearer <key>` (glint: --key or GLINT_API_KEY; \
             the first admin key is in the node's data dir, file admin-key)",
        ));
    };
    let Some(record) = node.keys.check(key) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid or revoked API key; check --key / GLINT_API_KEY, or ask an admin for a new key",
        ));
    };
    if record.role < needed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this API key has role '{}', and this call needs '{}' or higher; use a key with that role",
                record.role, needed
            ),
        ));
    }
    Ok(Caller {
        tenant: record.tenant,
        role: record.role,
        key_id: record.id,
    })
}

pub fn router(node: Arc<Node>) -> Router {
    // Room for the largest value, so the store's limit, with its clear message, decides.
    let kv_body_limit = axum::extract::DefaultBodyLimit::max(
        node.kv.limits().max_value_bytes.saturating_mul(2) + 4096,
    );
    let read = Router::new()
        .route("/api/v1/node", get(node_status))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/functions", get(functions::list))
        .route("/api/v1/functions/{name}", get(functions::info))
        .route(
            "/api/v1/functions/{name}/versions",
            get(functions::versions),
        )
        .route(
            "/api/v1/functions/{name}/versions/{version}",
            get(functions::version),
        )
        .route(
            "/api/v1/functions/{name}/versions/{version}/wasm",
            get(functions::download),
        )
        .route("/api/v1/functions/{name}/aliases", get(functions::aliases))
        .route("/api/v1/functions/{name}/env", get(functions::env))
        .route("/api/v1/functions/{name}/logs", get(logs::function_logs))
        .route("/api/v1/logs", get(logs::tenant_logs))
        .route("/api/v1/logs/stream", get(logs::follow))
        .route("/api/v1/usage", get(usage::usage))
        .route("/api/v1/stats", get(usage::stats))
        .route("/api/v1/stats/series", get(usage::series))
        .route("/metrics", get(usage::metrics))
        .route("/api/v1/functions/{name}/status", get(functions::status))
        .route("/api/v1/kv", get(kv::stores))
        .route("/api/v1/kv/{store}/keys", get(kv::keys))
        .route("/api/v1/kv/{store}/keys/{*key}", get(kv::get))
        .route("/api/v1/secrets", get(secrets::list))
        .route_layer(middleware::from_fn_with_state(
            (node.clone(), Role::Read),
            auth,
        ));
    let deploy = Router::new()
        .route(
            "/api/v1/functions/{name}",
            delete(functions::delete_function),
        )
        .route(
            "/api/v1/functions/{name}/versions",
            post(functions::deploy).layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/api/v1/functions/{name}/versions/{version}",
            delete(functions::delete_version),
        )
        .route(
            "/api/v1/functions/{name}/aliases/{alias}",
            put(functions::set_alias).delete(functions::delete_alias),
        )
        .route(
            "/api/v1/functions/{name}/env/{key}",
            put(functions::set_env).delete(functions::unset_env),
        )
        .route("/api/v1/kv/{store}", put(kv::create_store))
        .route(
            "/api/v1/kv/{store}/keys/{*key}",
            put(kv::set).delete(kv::delete).layer(kv_body_limit),
        )
        .route(
            "/api/v1/secrets/{name}",
            put(secrets::set).delete(secrets::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            (node.clone(), Role::Deploy),
            auth,
        ));
    let admin = Router::new()
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", delete(keys::revoke))
        .route_layer(middleware::from_fn_with_state(
            (node.clone(), Role::Admin),
            auth,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/version",
            get(|| async { Json(json!({ "version": env!("CARGO_PKG_VERSION") })) }),
        )
        .merge(read)
        .merge(deploy)
        .merge(admin)
        .merge(crate::dashboard::router(node.clone()))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such admin API route; the API lives under /api/v1",
            )
        })
        .with_state(node)
}

/// Whether a load balancer should send this node traffic: 503, with the reason, while it
/// cannot reach its store. It still serves what it has meanwhile.
async fn readyz(State(node): State<Arc<Node>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match node.store.health().await {
        Ok(()) => Json(json!({ "ready": true })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

/// The nodes that share this node's store, as their heartbeats say.
async fn nodes(State(node): State<Arc<Node>>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = glint_store::now_ms();
    let nodes: Vec<serde_json::Value> = node
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| {
            json!({
                "id": n.id,
                "region": n.region,
                "address": n.address,
                "version": n.version,
                "uptime_seconds": (now - n.started_at_ms).max(0) / 1000,
                "last_seen_ms_ago": (now - n.seen_at_ms).max(0),
                "functions": n.functions,
                "this_node": n.id == *node.node_id,
            })
        })
        .collect();
    Ok(Json(json!({ "nodes": nodes })))
}

/// The regions of the nodes that share this node's store, each with its nodes, when it
/// was last heard (its newest heartbeat), and its copies of what the regions share with
/// how far behind each is. A region whose nodes all stopped heartbeating drops out with
/// them.
async fn regions(State(node): State<Arc<Node>>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = glint_store::now_ms();
    let mut by_region: std::collections::BTreeMap<String, Vec<glint_store::NodeRecord>> =
        Default::default();
    let (nodes, copies) = tokio::join!(node.store.nodes(), node.store.copies());
    for n in nodes? {
        by_region.entry(n.region.clone()).or_default().push(n);
    }
    let copies = copies.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the regions' copies");
        Vec::new()
    });
    let regions: Vec<serde_json::Value> = by_region
        .into_iter()
        .map(|(region, nodes)| {
            let last_seen = nodes.iter().map(|n| n.seen_at_ms).max().unwrap_or(0);
            json!({
                "region": region,
                "this_region": region == *node.region,
                "nodes": nodes.iter().map(|n| json!({
                    "id": n.id,
                    "address": n.address,
                    "functions": n.functions,
                    "last_seen_ms_ago": (now - n.seen_at_ms).max(0),
                })).collect::<Vec<_>>(),
                "last_heard_ms_ago": (now - last_seen).max(0),
                "copies": copies.iter().filter(|c| c.region == region).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "regions": regions })))
}

async fn node_status(State(node): State<Arc<Node>>, _caller: Caller) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &node.runtime.stats;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": node.started.elapsed().as_secs(),
        "data_plane_url": node.public_url,
        "functions": node.routes.load().functions().count(),
        "compiles": stats.compiles.load(Relaxed),
        "compile_ms_total": stats.compile_micros.load(Relaxed) / 1000,
        "cache_loads": stats.cache_loads.load(Relaxed),
        "loaded_versions": node.routes.load().loaded_versions(),
        "metered_versions": node.meter.versions_metered(),
        "evictions": stats.evictions.load(Relaxed),
        "instantiations": stats.instantiations.load(Relaxed),
        "instance_reuses": stats.reuses.load(Relaxed),
        "instances_idle": node.runtime.idle_budget.idle(),
        "log_lines_dropped": node.logs.dropped.load(Relaxed),
    }))
}
