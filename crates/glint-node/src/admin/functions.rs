//! `/api/v1/functions/...`: deploy, inspect, route and delete functions and versions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use glint_runtime::Manifest;
use glint_store::{AliasName, AliasTarget, FunctionName, VersionId, VersionRecord};
use http::StatusCode;
use http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::error::ApiError;
use crate::node::Node;

fn function_name(raw: &str) -> Result<FunctionName, ApiError> {
    Ok(raw.parse()?)
}

fn version_json(node: &Node, v: &VersionRecord) -> Value {
    let limits = Manifest::parse(&v.manifest)
        .ok()
        .and_then(|m| m.config(&v.function).ok())
        .map(|c| json!(c.limits));
    json!({
        "version": v.version.to_string(),
        "sha256": v.sha256,
        "size": v.size,
        "world": v.world,
        "created_at_ms": v.created_at_ms,
        "limits": limits,
        "url": format!("{}/api/faas/v1/execute/{}/{}", node.public_url, v.function, v.version),
    })
}

pub async fn list(State(node): State<Arc<Node>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for f in node.store.functions(&caller.tenant).await? {
        let aliases = node.store.aliases(&caller.tenant, &f.name).await?;
        let latest = aliases
            .iter()
            .find(|a| a.name.as_str() == glint_store::LATEST_ALIAS)
            .map(|a| a.targets.clone());
        out.push(json!({
            "name": f.name,
            "route": f.route,
            "url": format!("{}{}", node.public_url, f.route),
            "latest": latest,
            "updated_at_ms": f.updated_at_ms,
        }));
    }
    Ok(Json(json!({ "functions": out })))
}

pub async fn info(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = function_name(&name)?;
    let t = &caller.tenant;
    let f = node.store.function(t, &name).await?;
    let versions = node.store.versions(t, &name).await?;
    let aliases = node.store.aliases(t, &name).await?;
    let api_env = node.store.env(t, &name).await?;
    let newest_manifest = versions
        .last()
        .and_then(|v| Manifest::parse(&v.manifest).ok())
        .and_then(|m| m.config(&name).ok());
    let mut env_names: Vec<String> = api_env.iter().map(|(k, _)| k.clone()).collect();
    if let Some(c) = &newest_manifest {
        env_names.extend(c.env.iter().map(|(k, _)| k.clone()));
    }
    env_names.sort();
    env_names.dedup();
    Ok(Json(json!({
        "name": f.name,
        "tenant": f.tenant,
        "route": f.route,
        "url": format!("{}{}", node.public_url, f.route),
        "created_at_ms": f.created_at_ms,
        "updated_at_ms": f.updated_at_ms,
        "versions": versions.iter().map(|v| version_json(&node, v)).collect::<Vec<_>>(),
        "aliases": aliases,
        "limits": newest_manifest.as_ref().map(|c| json!(c.limits)),
        "scaling": newest_manifest.as_ref().map(|c| json!(c.scaling)),
        "env": env_names,
    })))
}

pub async fn versions(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = function_name(&name)?;
    let versions = node.store.versions(&caller.tenant, &name).await?;
    Ok(Json(
        json!({ "versions": versions.iter().map(|v| version_json(&node, v)).collect::<Vec<_>>() }),
    ))
}

pub async fn version(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = function_name(&name)?;
    let v = node
        .store
        .version(&caller.tenant, &name, version.parse()?)
        .await?;
    let mut body = version_json(&node, &v);
    body["manifest"] = json!(v.manifest);
    Ok(Json(body))
}

pub async fn download(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = function_name(&name)?;
    let v = node
        .store
        .version(&caller.tenant, &name, version.parse()?)
        .await?;
    let bytes = node.store.artifact(&caller.tenant, &v.sha256).await?;
    let disposition = format!("attachment; filename=\"{name}-{}.wasm\"", v.version);
    Ok((
        [
            (CONTENT_TYPE, "application/wasm".to_string()),
            (http::header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct DeployQuery {
    /// The alias to move to the new version; `latest` unless given.
    pub alias: Option<String>,
    /// Deploy without moving any alias.
    #[serde(default)]
    pub no_alias: bool,
    /// Answer once stored, without waiting for every node to serve the version.
    #[serde(default)]
    pub no_wait: bool,
    /// How long to wait for every node, in seconds (60 unless given).
    pub wait_seconds: Option<u64>,
}

/// Reads a deploy: multipart with a `component` part and an optional `manifest` part, or
/// a bare `application/wasm` body with no manifest.
async fn read_upload(req: Request) -> Result<(String, Vec<u8>), ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let upload_error = |e: &dyn std::fmt::Display, status: StatusCode| {
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "upload_too_large"
        } else {
            "bad_upload"
        };
        ApiError::new(
            status,
            code,
            format!(
                "cannot read the upload: {e} (the limit is {} MiB)",
                super::MAX_UPLOAD_BYTES >> 20
            ),
        )
    };
    if !content_type.starts_with("multipart/form-data") {
        let bytes = Bytes::from_request(req, &())
            .await
            .map_err(|e| upload_error(&e.body_text(), e.status()))?;
        return Ok((String::new(), bytes.to_vec()));
    }
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| upload_error(&e.body_text(), e.status()))?;
    let (mut manifest, mut component) = (String::new(), None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| upload_error(&e.body_text(), e.status()))?
    {
        match field.name().unwrap_or_default() {
            "manifest" => {
                manifest = field
                    .text()
                    .await
                    .map_err(|e| upload_error(&e.body_text(), e.status()))?
            }
            "component" => {
                component = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| upload_error(&e.body_text(), e.status()))?
                        .to_vec(),
                )
            }
            other => {
                return Err(ApiError::bad_request(
                    "bad_upload",
                    format!(
                        "unexpected form field '{other}'; send 'component' (the .wasm) and optionally 'manifest' (glint.toml)"
                    ),
                ));
            }
        }
    }
    let component = component.ok_or_else(|| {
        ApiError::bad_request(
            "empty_component",
            "the upload has no 'component' field; attach the .wasm file",
        )
    })?;
    Ok((manifest, component))
}

pub async fn deploy(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<DeployQuery>,
    req: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The upload is read before anything is checked: answering while the client is still
    // sending would reset the connection, and it would never see the error.
    let (manifest, component) = read_upload(req).await?;
    let name = function_name(&name)?;
    let alias = match (query.no_alias, query.alias) {
        (true, _) => None,
        (false, Some(a)) => Some(a.parse::<AliasName>()?),
        (false, None) => Some(AliasName::latest()),
    };
    let started = glint_store::now_ms();
    let record = node
        .deploy(&caller.tenant, &name, manifest, component, alias.clone())
        .await?;
    // A version no alias points to is compiled on first use, so there is nothing to
    // wait for.
    let rollout = match (&alias, query.no_wait) {
        (Some(_), false) => {
            let limit = std::time::Duration::from_secs(query.wait_seconds.unwrap_or(60).min(600));
            let rollout = node
                .wait_ready(&caller.tenant, &name, record.version, limit)
                .await?;
            Some(rollout_json(&rollout, started))
        }
        _ => None,
    };
    let f = node.store.function(&caller.tenant, &name).await?;
    let mut body = version_json(&node, &record);
    body["function"] = json!(name);
    body["route"] = json!(f.route);
    body["function_url"] = json!(format!("{}{}", node.public_url, f.route));
    body["alias"] = json!(alias);
    body["rollout"] = json!(rollout);
    Ok((StatusCode::CREATED, Json(body)))
}

/// Which nodes and regions serve the new version, and after how long (ms from the
/// deploy's start; a region's is its first node's).
fn rollout_json(rollout: &crate::follow::Rollout, started_ms: i64) -> Value {
    let after = |at: i64| (at - started_ms).max(0);
    let ready: Vec<Value> = rollout
        .ready
        .iter()
        .map(|(node, at)| {
            json!({ "node": node, "region": rollout.region_of.get(node), "after_ms": after(*at) })
        })
        .collect();
    let regions: Vec<Value> = rollout
        .regions()
        .into_iter()
        .map(|(region, first)| json!({ "region": region, "after_ms": first.map(after) }))
        .collect();
    json!({ "ready": ready, "not_ready": rollout.not_ready, "regions": regions })
}

pub async fn delete_function(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = function_name(&name)?;
    node.delete_function(&caller.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_version(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = function_name(&name)?;
    let version: VersionId = version.parse()?;
    let tenant = caller.tenant.clone();
    let n = name.clone();
    node.change(&caller.tenant, &name, move |store| async move {
        store.delete_version(&tenant, &n, version).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn aliases(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = function_name(&name)?;
    Ok(Json(
        json!({ "aliases": node.store.aliases(&caller.tenant, &name).await? }),
    ))
}

#[derive(Deserialize)]
pub struct AliasBody {
    /// Version to weight, e.g. `{"v1": 0.9, "v2": 0.1}`.
    pub versions: BTreeMap<String, f64>,
}

impl AliasBody {
    /// The weighted versions, checked: numbers >= 0, at least one above 0.
    pub fn targets(self) -> Result<Vec<AliasTarget>, ApiError> {
        let mut targets = Vec::new();
        for (version, weight) in self.versions {
            if !weight.is_finite() || weight < 0.0 {
                return Err(ApiError::bad_request(
                    "invalid_weight",
                    format!(
                        "weight {weight} for {version} is invalid; weights are numbers >= 0, such as 0.9 and 0.1"
                    ),
                ));
            }
            targets.push(AliasTarget {
                version: version.parse()?,
                weight,
            });
        }
        if targets.iter().map(|t| t.weight).sum::<f64>() <= 0.0 {
            return Err(ApiError::bad_request(
                "invalid_weight",
                "an alias needs at least one version with a weight above 0, e.g. {\"versions\": {\"v2\": 1}}",
            ));
        }
        Ok(targets)
    }
}

pub async fn set_alias(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((name, alias)): Path<(String, String)>,
    Json(body): Json<AliasBody>,
) -> Result<Json<Value>, ApiError> {
    let name = function_name(&name)?;
    let alias: AliasName = alias.parse()?;
    let targets = body.targets()?;
    let tenant = caller.tenant.clone();
    let (n, a) = (name.clone(), alias.clone());
    let record = node
        .change(&caller.tenant, &name, move |store| async move {
            store.set_alias(&tenant, &n, &a, targets).await
        })
        .await?;
    Ok(Json(json!(record)))
}

pub async fn delete_alias(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = function_name(&name)?;
    let alias: AliasName = alias.parse()?;
    if alias == AliasName::latest() {
        return Err(ApiError::bad_request(
            "alias_required",
            "'latest' is what the data plane serves and cannot be deleted; point it elsewhere instead",
        ));
    }
    let tenant = caller.tenant.clone();
    let n = name.clone();
    node.change(&caller.tenant, &name, move |store| async move {
        store.delete_alias(&tenant, &n, &alias).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn env(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = function_name(&name)?;
    let env = node.store.env(&caller.tenant, &name).await?;
    let vars: Vec<_> = env
        .into_iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    Ok(Json(json!({ "env": vars })))
}

#[derive(Deserialize)]
pub struct EnvBody {
    pub value: String,
}

/// An env var name as the API takes it in a path.
pub fn check_env_key(key: &str) -> Result<(), ApiError> {
    if glint_runtime::manifest::is_env_name(key) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "env var name {key:?} is invalid; use letters, digits and '_', not starting with a digit"
            ),
        ))
    }
}

pub async fn set_env(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((name, key)): Path<(String, String)>,
    Json(body): Json<EnvBody>,
) -> Result<StatusCode, ApiError> {
    let name = function_name(&name)?;
    check_env_key(&key)?;
    let tenant = caller.tenant.clone();
    let n = name.clone();
    node.change(&caller.tenant, &name, move |store| async move {
        store.set_env(&tenant, &n, &key, &body.value).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unset_env(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((name, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = function_name(&name)?;
    let tenant = caller.tenant.clone();
    let n = name.clone();
    node.change(&caller.tenant, &name, move |store| async move {
        store.unset_env(&tenant, &n, &key).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the function is served on this node, and each version's state here.
pub async fn status(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = function_name(&name)?;
    let f = node.store.function(&caller.tenant, &name).await?;
    let routes = node.routes.load();
    let entry = routes.function(caller.tenant.as_str(), name.as_str());
    let mut versions: Vec<Value> = entry
        .map(|e| {
            e.versions
                .values()
                .map(|slot| {
                    let limit = slot.config.scaling.max_concurrency as usize;
                    json!({
                        "version": slot.version.to_string(),
                        "loaded": slot.compiled.initialized(),
                        "in_flight": limit.saturating_sub(slot.concurrency.available_permits()),
                        "max_concurrency": limit,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|v| {
        v["version"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('v')
            .parse::<u32>()
            .unwrap_or(0)
    });
    let ready = entry
        .and_then(|e| e.alias(glint_store::LATEST_ALIAS))
        .is_some();
    let latest = node
        .store
        .aliases(&caller.tenant, &name)
        .await?
        .into_iter()
        .find(|a| a.name.as_str() == glint_store::LATEST_ALIAS)
        .and_then(|a| a.targets.iter().map(|t| t.version).max());
    let regions = match latest {
        Some(version) => where_ready(&node, &caller.tenant, &name, version, ready).await,
        None => Vec::new(),
    };
    Ok(Json(json!({
        "name": name,
        "route": f.route,
        "url": format!("{}{}", node.public_url, f.route),
        "ready": ready,
        "latest": latest.map(|v| v.to_string()),
        "regions": regions,
        "versions": versions,
    })))
}

/// Each region, with which of its live nodes serve `version` (as their readiness in
/// the store says; this node by its own route table). A store that cannot say leaves
/// this node's region alone.
async fn where_ready(
    node: &Node,
    tenant: &glint_store::TenantId,
    name: &glint_store::FunctionName,
    version: VersionId,
    ready_here: bool,
) -> Vec<Value> {
    let asked = async {
        let serving = node.store.ready(tenant, name, version).await?;
        Ok::<_, glint_store::StoreError>((serving, node.store.nodes().await?))
    };
    let (serving, live) = match asked.await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read where a function is ready");
            (Vec::new(), Vec::new())
        }
    };
    let mut by_region: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for n in &live {
        let this = n.id == *node.node_id;
        let ready = if this {
            ready_here
        } else {
            serving.iter().any(|(id, _)| *id == n.id)
        };
        by_region
            .entry(n.region.clone())
            .or_default()
            .push(json!({ "id": n.id, "ready": ready, "this_node": this }));
    }
    if !live.iter().any(|n| n.id == *node.node_id) {
        by_region
            .entry(node.region.to_string())
            .or_default()
            .push(json!({ "id": &*node.node_id, "ready": ready_here, "this_node": true }));
    }
    by_region
        .into_iter()
        .map(|(region, nodes)| {
            let ready = nodes.iter().any(|n| n["ready"] == true);
            json!({ "region": region, "this_region": region == *node.region, "ready": ready, "nodes": nodes })
        })
        .collect()
}
