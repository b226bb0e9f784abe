//! The admin API: JSON under `/api/v1`, on its own listener.
//!
//! Every route but `/healthz`, `/readyz` and `/version` needs `Authorization: Bearer
//! <key>`. The [`auth`] middleware checks the key once and hands the handler a
//! [`Caller`] with the key's tenant and role; routes are grouped by the role they need.

mod extract;
mod functions;
mod keys;
mod kv;
mod logs;
pub use functions::{AliasBody, EnvBody, check_env_key};
pub use keys::NewKey;
pub use logs::parse_time;
mod openapi;
mod secrets;
mod tenants;
mod usage;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use glint_store::{Role, TenantId};
use http::StatusCode;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::node::Node;
use crate::session::session_cookie;
use extract::Json;

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
    let reads = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    match caller(&node, needed, req.headers(), reads) {
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
    reads: bool,
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
    let cookie = reads.then(|| session_cookie(headers)).flatten();
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
    // A suspended tenant's keys still read, so its data can be taken out; a tenant's
    // being deleted do nothing.
    if reads {
        node.tenants.check_readable(&record.tenant)?;
    } else {
        node.tenants.check_active(&record.tenant)?;
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
    let read = OpenApiRouter::new()
        .routes(routes!(node_status))
        .routes(routes!(nodes))
        .routes(routes!(regions))
        .routes(routes!(functions::list))
        .routes(routes!(functions::info))
        .routes(routes!(functions::versions))
        .routes(routes!(functions::version))
        .routes(routes!(functions::download))
        .routes(routes!(functions::aliases))
        .routes(routes!(functions::env))
        .routes(routes!(functions::status))
        .routes(routes!(logs::function_logs))
        .routes(routes!(logs::tenant_logs))
        .routes(routes!(logs::follow))
        .routes(routes!(usage::usage))
        .routes(routes!(usage::stats))
        .routes(routes!(usage::series))
        .routes(routes!(usage::metrics))
        .routes(routes!(kv::stores))
        .routes(routes!(kv::keys))
        .routes(routes!(kv::get))
        .routes(routes!(secrets::list))
        .routes(routes!(tenants::own));
    let (schemas, paths, upload) = routes!(functions::deploy);
    let upload = upload.layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES));
    let (kv_schemas, kv_paths, kv_write) = routes!(kv::set, kv::delete);
    let kv_write = kv_write.layer(kv_body_limit);
    let deploy = OpenApiRouter::new()
        .routes((schemas, paths, upload))
        .routes(routes!(functions::delete_function))
        .routes(routes!(functions::delete_version))
        .routes(routes!(functions::set_alias, functions::delete_alias))
        .routes(routes!(functions::set_env, functions::unset_env))
        .routes(routes!(kv::create_store))
        .routes((kv_schemas, kv_paths, kv_write))
        .routes(routes!(secrets::set, secrets::delete));
    let admin = OpenApiRouter::new()
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke));
    let operator = OpenApiRouter::new()
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::show, tenants::delete))
        .routes(routes!(tenants::create_key))
        .routes(routes!(tenants::set_quotas))
        .routes(routes!(tenants::suspend))
        .routes(routes!(tenants::resume));
    let public = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(version))
        .routes(routes!(openapi::document));
    // The document is made from the routes as they are served: each group's operations
    // state the role its key check needs.
    let (mut router, public_api) = public.split_for_parts();
    let mut api = openapi::ApiDoc::openapi();
    api.merge(public_api);
    for (role, group) in [
        (Role::Read, read),
        (Role::Deploy, deploy),
        (Role::Admin, admin),
        (Role::Operator, operator),
    ] {
        let (group_router, mut group_api) = group
            .route_layer(middleware::from_fn_with_state((node.clone(), role), auth))
            .split_for_parts();
        openapi::secure(&mut group_api, role);
        router = router.merge(group_router);
        api.merge(group_api);
    }
    openapi::state_refusals(&mut api);
    openapi::rename_paths(&mut api);
    router
        .merge(crate::dashboard::router(node.clone()))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such admin API route; the API lives under /api/v1",
            )
        })
        .layer(Extension(openapi::Document::new(&api)))
        .with_state(node)
}

/// Whether this process answers at all.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "node",
    responses((status = 200, description = "The node is up", body = String, content_type = "text/plain")),
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Glint's version.
#[derive(Serialize, ToSchema)]
pub struct VersionBody {
    pub version: String,
}

/// The version of Glint this node runs.
#[utoipa::path(
    get,
    path = "/version",
    tag = "node",
    responses((status = 200, description = "Glint's version", body = VersionBody)),
)]
async fn version() -> Json<VersionBody> {
    Json(VersionBody {
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Whether this node can serve.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Whether a load balancer should send this node traffic: 503, with the reason, while it
/// cannot reach its store. It still serves what it has meanwhile.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "node",
    responses(
        (status = 200, description = "The node reaches its store", body = Readiness),
        (status = 503, description = "The node cannot reach its store now; it serves what it has", body = Readiness),
    ),
)]
async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, Json<Readiness>) {
    match node.store.health().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                ready: true,
                reason: None,
            }),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                ready: false,
                reason: Some(reason),
            }),
        ),
    }
}

/// The nodes that share a store.
#[derive(Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeInfo>,
}

/// A node, as its heartbeat says.
#[derive(Serialize, ToSchema)]
pub struct NodeInfo {
    pub id: String,
    pub region: String,
    /// Where its admin API answers.
    pub address: String,
    /// The Glint version it runs.
    pub version: String,
    pub uptime_seconds: i64,
    pub last_seen_ms_ago: i64,
    /// Functions in its route table, every tenant's: the operator's key only.
    pub functions: Option<usize>,
    /// Whether this is the node answering.
    pub this_node: bool,
}

/// The nodes that share this node's store, as their heartbeats say.
#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    tag = "node",
    responses((status = 200, description = "The live nodes", body = NodeList)),
)]
async fn nodes(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<NodeList>, ApiError> {
    let operator = caller.role == Role::Operator;
    let now = glint_store::now_ms();
    let nodes = node
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| NodeInfo {
            uptime_seconds: (now - n.started_at_ms).max(0) / 1000,
            last_seen_ms_ago: (now - n.seen_at_ms).max(0),
            this_node: n.id == *node.node_id,
            id: n.id,
            region: n.region,
            address: n.address,
            version: n.version,
            functions: operator.then_some(n.functions),
        })
        .collect();
    Ok(Json(NodeList { nodes }))
}

/// The regions of the nodes that share a store.
#[derive(Serialize, ToSchema)]
pub struct RegionList {
    pub regions: Vec<RegionInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionInfo {
    pub region: String,
    /// Whether the answering node is in it.
    pub this_region: bool,
    pub nodes: Vec<RegionNode>,
    /// Since its newest heartbeat.
    pub last_heard_ms_ago: i64,
    /// Its copies of what the regions share, with how far behind each is.
    pub copies: Vec<glint_store::CopyState>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionNode {
    pub id: String,
    pub address: String,
    /// Functions in its route table, every tenant's: the operator's key only.
    pub functions: Option<usize>,
    pub last_seen_ms_ago: i64,
}

/// The regions of the nodes that share this node's store, each with its nodes, when it
/// was last heard (its newest heartbeat), and its copies of what the regions share with
/// how far behind each is. A region whose nodes all stopped heartbeating drops out with
/// them.
#[utoipa::path(
    get,
    path = "/api/v1/regions",
    tag = "node",
    responses((status = 200, description = "The regions of the live nodes", body = RegionList)),
)]
async fn regions(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<RegionList>, ApiError> {
    let operator = caller.role == Role::Operator;
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
    let regions = by_region
        .into_iter()
        .map(|(region, nodes)| {
            let last_seen = nodes.iter().map(|n| n.seen_at_ms).max().unwrap_or(0);
            RegionInfo {
                this_region: region == *node.region,
                nodes: nodes
                    .iter()
                    .map(|n| RegionNode {
                        id: n.id.clone(),
                        address: n.address.clone(),
                        functions: operator.then_some(n.functions),
                        last_seen_ms_ago: (now - n.seen_at_ms).max(0),
                    })
                    .collect(),
                last_heard_ms_ago: (now - last_seen).max(0),
                copies: copies
                    .iter()
                    .filter(|c| c.region == region)
                    .cloned()
                    .collect(),
                region,
            }
        })
        .collect();
    Ok(Json(RegionList { regions }))
}

/// This node: its version, what it serves, and its engine's counters.
#[derive(Serialize, ToSchema)]
pub struct NodeStatus {
    pub version: String,
    pub uptime_seconds: u64,
    /// Where the data plane answers, the base of every function's URL.
    pub data_plane_url: String,
    /// Functions in the route table: the caller's tenant's (every tenant's for the
    /// operator).
    pub functions: usize,
    pub compiles: u64,
    pub compile_ms_total: u64,
    /// Compiled components loaded from the compile cache instead of compiled.
    pub cache_loads: u64,
    /// Versions with compiled code in memory: the caller's tenant's (every tenant's for
    /// the operator).
    pub loaded_versions: usize,
    pub metered_versions: usize,
    pub evictions: u64,
    pub instantiations: u64,
    pub instance_reuses: u64,
    pub instances_idle: usize,
    pub log_lines_dropped: u64,
}

/// This node's version, what it serves, and its engine's counters.
#[utoipa::path(
    get,
    path = "/api/v1/node",
    tag = "node",
    responses((status = 200, description = "This node", body = NodeStatus)),
)]
async fn node_status(State(node): State<Arc<Node>>, caller: Caller) -> Json<NodeStatus> {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &node.runtime.stats;
    let routes = node.routes.load();
    let visible: Vec<_> = routes
        .functions()
        .filter(|f| caller.role == Role::Operator || f.tenant == caller.tenant)
        .collect();
    Json(NodeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: node.started.elapsed().as_secs(),
        data_plane_url: node.public_url.to_string(),
        functions: visible.len(),
        compiles: stats.compiles.load(Relaxed),
        compile_ms_total: stats.compile_micros.load(Relaxed) / 1000,
        cache_loads: stats.cache_loads.load(Relaxed),
        loaded_versions: visible.iter().map(|f| f.loaded_versions()).sum(),
        metered_versions: node.meter.versions_metered(),
        evictions: stats.evictions.load(Relaxed),
        instantiations: stats.instantiations.load(Relaxed),
        instance_reuses: stats.reuses.load(Relaxed),
        instances_idle: node.runtime.idle_budget.idle(),
        log_lines_dropped: node.logs.dropped.load(Relaxed),
    })
}
