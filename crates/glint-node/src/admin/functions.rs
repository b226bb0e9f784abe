//! `/api/v1/functions/...`: deploy, inspect, route and delete functions and versions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::response::{IntoResponse, Response};
use glint_runtime::Manifest;
use glint_runtime::manifest::{Limits, Scaling};
use glint_store::{
    AliasName, AliasRecord, AliasTarget, FunctionName, TenantId, VersionId, VersionRecord,
};
use http::StatusCode;
use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::extract::{Json, Path, Query};
use super::openapi::ErrorBody;
use crate::error::ApiError;
use crate::node::Node;

/// The `{name}` of a function's paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FunctionPath {
    /// The function's name.
    #[param(value_type = FunctionName)]
    pub name: String,
}

/// The `{name}` and `{version}` of a version's paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The function's name.
    #[param(value_type = FunctionName)]
    pub name: String,
    /// The version: `v3` or `3`.
    #[param(pattern = "^v?[1-9][0-9]{0,8}$")]
    pub version: String,
}

/// The `{name}` and `{alias}` of an alias's paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AliasPath {
    /// The function's name.
    #[param(value_type = FunctionName)]
    pub name: String,
    /// The alias, such as `latest`, `live` or `canary`.
    #[param(value_type = AliasName)]
    pub alias: String,
}

/// The `{name}` and `{key}` of an env var's paths.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EnvPath {
    /// The function's name.
    #[param(value_type = FunctionName)]
    pub name: String,
    /// The env var: letters, digits and '_', not starting with a digit.
    #[param(pattern = "^[A-Za-z_][A-Za-z0-9_]*$")]
    pub key: String,
}

/// The errors of an operation on a function by name.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a schema only: ApiError is what handlers answer
pub enum FunctionErrors {
    /// The name is invalid (`invalid_name`)
    #[response(status = 400)]
    InvalidName(ErrorBody),
    /// No such function (`function_not_found`)
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// The errors of an operation on a version.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a schema only: ApiError is what handlers answer
pub enum VersionErrors {
    /// The name or version is invalid (`invalid_name`)
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No such function or version (`function_not_found`, `not_found`)
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A version as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct VersionInfo {
    /// Such as `v3`.
    pub version: String,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: u64,
    /// The HTTP world the component speaks: `wasi-0.2` or `wasi-0.3`.
    pub world: String,
    pub created_at_ms: i64,
    /// The limits its manifest sets, with the defaults filled in.
    pub limits: Option<Limits>,
    /// Where the data plane runs this exact version; null where no request can reach it
    /// (another tenant's, on a node without `--base-domain`).
    pub url: Option<String>,
    /// The manifest (`glint.toml`) it was deployed with; on the one-version read only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

fn function_name(raw: &str) -> Result<FunctionName, ApiError> {
    Ok(raw.parse()?)
}

fn version_info(node: &Node, v: &VersionRecord) -> VersionInfo {
    let limits = Manifest::parse(&v.manifest)
        .ok()
        .and_then(|m| m.config(&v.function).ok())
        .map(|c| c.limits);
    VersionInfo {
        version: v.version.to_string(),
        sha256: v.sha256.clone(),
        size: v.size,
        world: v.world.clone(),
        created_at_ms: v.created_at_ms,
        limits,
        url: node
            .tenant_base(&v.tenant)
            .map(|base| format!("{base}/api/faas/v1/execute/{}/{}", v.function, v.version)),
        manifest: None,
    }
}

/// The functions of a tenant.
#[derive(Serialize, ToSchema)]
pub struct FunctionList {
    pub functions: Vec<FunctionSummary>,
}

/// A function as listed.
#[derive(Serialize, ToSchema)]
pub struct FunctionSummary {
    pub name: FunctionName,
    /// The path prefix the data plane serves it under, such as `/hello`.
    pub route: String,
    /// Where the data plane serves it; null where no request can reach it (another
    /// tenant's, on a node without `--base-domain`).
    pub url: Option<String>,
    /// The versions its `latest` alias weighs.
    pub latest: Option<Vec<AliasTarget>>,
    pub updated_at_ms: i64,
}

/// The caller's functions, each with its route, URL and `latest` alias.
#[utoipa::path(
    get,
    path = "/api/v1/functions",
    tag = "functions",
    responses((status = 200, description = "The functions", body = FunctionList)),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> Result<Json<FunctionList>, ApiError> {
    let mut functions = Vec::new();
    for f in node.store.functions(&caller.tenant).await? {
        let aliases = node.store.aliases(&caller.tenant, &f.name).await?;
        let latest = aliases
            .iter()
            .find(|a| a.name.as_str() == glint_store::LATEST_ALIAS)
            .map(|a| a.targets.clone());
        functions.push(FunctionSummary {
            url: node.function_url(&f.tenant, &f.name, &f.route),
            name: f.name,
            route: f.route,
            latest,
            updated_at_ms: f.updated_at_ms,
        });
    }
    Ok(Json(FunctionList { functions }))
}

/// A function with its versions, aliases, limits and env var names.
#[derive(Serialize, ToSchema)]
pub struct FunctionInfo {
    pub name: FunctionName,
    pub tenant: TenantId,
    pub route: String,
    /// Null where no request can reach it.
    pub url: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub versions: Vec<VersionInfo>,
    pub aliases: Vec<AliasRecord>,
    /// The newest version's limits.
    pub limits: Option<Limits>,
    /// The newest version's scaling.
    pub scaling: Option<Scaling>,
    /// The names of its env vars, from the API and the newest manifest; never values.
    pub env: Vec<String>,
}

/// One function: its versions, aliases, newest limits and scaling, and env var names.
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}",
    tag = "functions",
    params(FunctionPath),
    responses(
        (status = 200, description = "The function", body = FunctionInfo),
        FunctionErrors,
    ),
)]
pub async fn info(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
) -> Result<Json<FunctionInfo>, ApiError> {
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
    Ok(Json(FunctionInfo {
        url: node.function_url(&f.tenant, &f.name, &f.route),
        name: f.name,
        tenant: f.tenant,
        route: f.route,
        created_at_ms: f.created_at_ms,
        updated_at_ms: f.updated_at_ms,
        versions: versions.iter().map(|v| version_info(&node, v)).collect(),
        aliases,
        limits: newest_manifest.as_ref().map(|c| c.limits),
        scaling: newest_manifest.as_ref().map(|c| c.scaling),
        env: env_names,
    }))
}

/// A function's versions, oldest first.
#[derive(Serialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<VersionInfo>,
}

/// A function's versions, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/versions",
    tag = "functions",
    params(FunctionPath),
    responses(
        (status = 200, description = "The versions", body = VersionList),
        FunctionErrors,
    ),
)]
pub async fn versions(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
) -> Result<Json<VersionList>, ApiError> {
    let name = function_name(&name)?;
    let versions = node.store.versions(&caller.tenant, &name).await?;
    Ok(Json(VersionList {
        versions: versions.iter().map(|v| version_info(&node, v)).collect(),
    }))
}

/// One version, with the manifest it was deployed with.
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/versions/{version}",
    tag = "functions",
    params(VersionPath),
    responses(
        (status = 200, description = "The version", body = VersionInfo),
        VersionErrors,
    ),
)]
pub async fn version(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(VersionPath { name, version }): Path<VersionPath>,
) -> Result<Json<VersionInfo>, ApiError> {
    let name = function_name(&name)?;
    let v = node
        .store
        .version(&caller.tenant, &name, version.parse()?)
        .await?;
    let mut info = version_info(&node, &v);
    info.manifest = Some(v.manifest);
    Ok(Json(info))
}

/// A version's component, as deployed.
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/versions/{version}/wasm",
    tag = "functions",
    params(VersionPath),
    responses(
        (status = 200, description = "The component's bytes", body = Vec<u8>, content_type = "application/wasm"),
        VersionErrors,
    ),
)]
pub async fn download(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(VersionPath { name, version }): Path<VersionPath>,
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

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeployQuery {
    /// The alias to move to the new version; `latest` unless given.
    #[param(value_type = Option<AliasName>)]
    pub alias: Option<String>,
    /// Deploy without moving any alias.
    #[serde(default)]
    pub no_alias: bool,
    /// Answer once stored, without waiting for every node to serve the version.
    #[serde(default)]
    pub no_wait: bool,
    /// How long to wait for every node, in seconds (60 unless given, at most 600).
    pub wait_seconds: Option<u64>,
}

/// A deploy as a form: the component, and optionally its manifest.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the handler reads the form field by field
pub struct DeployForm {
    /// The manifest (`glint.toml`) as text.
    manifest: Option<String>,
    /// The component (`.wasm`).
    #[schema(value_type = String, format = Binary, content_media_type = "application/wasm")]
    component: Vec<u8>,
}

/// A new version, where it serves, and which alias moved to it.
#[derive(Serialize, ToSchema)]
pub struct Deployed {
    #[serde(flatten)]
    pub version: VersionInfo,
    pub function: FunctionName,
    pub route: String,
    /// The function's URL on the data plane.
    pub function_url: Option<String>,
    /// The alias moved to the new version, unless `no_alias`.
    pub alias: Option<AliasName>,
    /// Which nodes and regions serve it; absent with `no_wait` or `no_alias`.
    pub rollout: Option<Rollout>,
}

/// Which nodes and regions serve a new version, and after how long.
#[derive(Serialize, ToSchema)]
pub struct Rollout {
    pub ready: Vec<RolloutNode>,
    /// Live nodes that did not serve it within the wait.
    pub not_ready: Vec<String>,
    pub regions: Vec<RolloutRegion>,
}

#[derive(Serialize, ToSchema)]
pub struct RolloutNode {
    pub node: String,
    pub region: Option<String>,
    /// From the deploy's start.
    pub after_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RolloutRegion {
    pub region: String,
    /// When its first node served it, from the deploy's start; null if none did in time.
    pub after_ms: Option<i64>,
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

/// Deploys a new version: stores it, moves the alias (`latest` unless told otherwise) to
/// it, and waits until every live node serves it.
#[utoipa::path(
    post,
    path = "/api/v1/functions/{name}/versions",
    tag = "functions",
    params(FunctionPath, DeployQuery),
    request_body(
        description = "The component and its manifest as a form, or the bare component",
        content(
            (DeployForm = "multipart/form-data"),
            (Vec<u8> = "application/wasm"),
        ),
    ),
    responses(
        (status = 201, description = "Deployed", body = Deployed),
        (status = 400, description = "The upload, manifest or component is invalid; the code says which", body = ErrorBody),
        (status = 409, description = "The route belongs to another function (`conflict`)", body = ErrorBody),
        (status = 413, description = "The upload is above the limit (`upload_too_large`)", body = ErrorBody),
    ),
)]
pub async fn deploy(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
    Query(query): Query<DeployQuery>,
    req: Request,
) -> Result<(StatusCode, Json<Deployed>), ApiError> {
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
            Some(rollout_info(&rollout, started))
        }
        _ => None,
    };
    let f = node.store.function(&caller.tenant, &name).await?;
    Ok((
        StatusCode::CREATED,
        Json(Deployed {
            version: version_info(&node, &record),
            function: name,
            function_url: node.function_url(&f.tenant, &f.name, &f.route),
            route: f.route,
            alias,
            rollout,
        }),
    ))
}

/// Which nodes and regions serve the new version, and after how long (ms from the
/// deploy's start; a region's is its first node's).
fn rollout_info(rollout: &crate::follow::Rollout, started_ms: i64) -> Rollout {
    let after = |at: i64| (at - started_ms).max(0);
    Rollout {
        ready: rollout
            .ready
            .iter()
            .map(|(node, at)| RolloutNode {
                node: node.clone(),
                region: rollout.region_of.get(node).cloned(),
                after_ms: after(*at),
            })
            .collect(),
        not_ready: rollout.not_ready.clone(),
        regions: rollout
            .regions()
            .into_iter()
            .map(|(region, first)| RolloutRegion {
                region: region.to_string(),
                after_ms: first.map(after),
            })
            .collect(),
    }
}

/// Deletes a function with all its versions, aliases and env vars.
#[utoipa::path(
    delete,
    path = "/api/v1/functions/{name}",
    tag = "functions",
    params(FunctionPath),
    responses(
        (status = 204, description = "Deleted"),
        FunctionErrors,
    ),
)]
pub async fn delete_function(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
) -> Result<StatusCode, ApiError> {
    let name = function_name(&name)?;
    node.delete_function(&caller.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a version no alias points to.
#[utoipa::path(
    delete,
    path = "/api/v1/functions/{name}/versions/{version}",
    tag = "functions",
    params(VersionPath),
    responses(
        (status = 204, description = "Deleted"),
        VersionErrors,
        (status = 409, description = "An alias points to it (`conflict`); move the alias first", body = ErrorBody),
    ),
)]
pub async fn delete_version(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(VersionPath { name, version }): Path<VersionPath>,
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

/// A function's aliases.
#[derive(Serialize, ToSchema)]
pub struct AliasList {
    pub aliases: Vec<AliasRecord>,
}

/// A function's aliases, each with its weighted versions.
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/aliases",
    tag = "functions",
    params(FunctionPath),
    responses(
        (status = 200, description = "The aliases", body = AliasList),
        FunctionErrors,
    ),
)]
pub async fn aliases(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
) -> Result<Json<AliasList>, ApiError> {
    let name = function_name(&name)?;
    Ok(Json(AliasList {
        aliases: node.store.aliases(&caller.tenant, &name).await?,
    }))
}

/// Where an alias sends traffic.
#[derive(Deserialize, ToSchema)]
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

/// Points an alias at one version, or splits its traffic between versions by weight.
#[utoipa::path(
    put,
    path = "/api/v1/functions/{name}/aliases/{alias}",
    tag = "functions",
    params(AliasPath),
    request_body = AliasBody,
    responses(
        (status = 200, description = "The alias as it is now", body = AliasRecord),
        (status = 400, description = "A name, version or weight is invalid; the code says which", body = ErrorBody),
        (status = 404, description = "No such function or version", body = ErrorBody),
    ),
)]
pub async fn set_alias(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(AliasPath { name, alias }): Path<AliasPath>,
    Json(body): Json<AliasBody>,
) -> Result<Json<AliasRecord>, ApiError> {
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
    Ok(Json(record))
}

/// Deletes an alias; `latest`, which the data plane serves, cannot be.
#[utoipa::path(
    delete,
    path = "/api/v1/functions/{name}/aliases/{alias}",
    tag = "functions",
    params(AliasPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A name is invalid, or the alias is `latest` (`alias_required`)", body = ErrorBody),
        (status = 404, description = "No such function or alias", body = ErrorBody),
    ),
)]
pub async fn delete_alias(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(AliasPath { name, alias }): Path<AliasPath>,
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

/// The env vars set through the API.
#[derive(Serialize, ToSchema)]
pub struct EnvList {
    pub env: Vec<EnvVar>,
}

#[derive(Serialize, ToSchema)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// The env vars set on a function through the API (those of its manifest are in its
/// versions' manifests).
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/env",
    tag = "functions",
    params(FunctionPath),
    responses(
        (status = 200, description = "The env vars", body = EnvList),
        FunctionErrors,
    ),
)]
pub async fn env(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
) -> Result<Json<EnvList>, ApiError> {
    let name = function_name(&name)?;
    let env = node.store.env(&caller.tenant, &name).await?;
    Ok(Json(EnvList {
        env: env
            .into_iter()
            .map(|(name, value)| EnvVar { name, value })
            .collect(),
    }))
}

/// An env var's value.
#[derive(Deserialize, ToSchema)]
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

/// Sets an env var on every version of a function, over its manifest's.
#[utoipa::path(
    put,
    path = "/api/v1/functions/{name}/env/{key}",
    tag = "functions",
    params(EnvPath),
    request_body = EnvBody,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "A name is invalid (`invalid_name`)", body = ErrorBody),
        (status = 404, description = "No such function (`function_not_found`)", body = ErrorBody),
    ),
)]
pub async fn set_env(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(EnvPath { name, key }): Path<EnvPath>,
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

/// Removes an env var set through the API.
#[utoipa::path(
    delete,
    path = "/api/v1/functions/{name}/env/{key}",
    tag = "functions",
    params(EnvPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "The name is invalid (`invalid_name`)", body = ErrorBody),
        (status = 404, description = "No such function or env var", body = ErrorBody),
    ),
)]
pub async fn unset_env(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(EnvPath { name, key }): Path<EnvPath>,
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

/// Where a function serves, as this node sees it.
#[derive(Serialize, ToSchema)]
pub struct FunctionStatus {
    pub name: FunctionName,
    pub route: String,
    /// Null where no request can reach it.
    pub url: Option<String>,
    /// Whether this node serves its `latest` alias.
    pub ready: bool,
    /// The newest version `latest` points to, such as `v3`.
    pub latest: Option<String>,
    /// Each region, with which of its live nodes serve `latest`'s newest version.
    pub regions: Vec<RegionReadiness>,
    /// Each version this node has in its route table.
    pub versions: Vec<VersionState>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionReadiness {
    pub region: String,
    pub this_region: bool,
    /// Whether any of its nodes serves the version.
    pub ready: bool,
    pub nodes: Vec<NodeReadiness>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeReadiness {
    pub id: String,
    pub ready: bool,
    pub this_node: bool,
}

/// A version on this node.
#[derive(Serialize, ToSchema)]
pub struct VersionState {
    /// Such as `v3`.
    pub version: String,
    /// Whether its compiled code is in memory.
    pub loaded: bool,
    pub in_flight: usize,
    pub max_concurrency: usize,
}

/// Whether the function is served on this node, and each version's state here.
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/status",
    tag = "functions",
    params(FunctionPath),
    responses(
        (status = 200, description = "Where it serves", body = FunctionStatus),
        FunctionErrors,
    ),
)]
pub async fn status(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
) -> Result<Json<FunctionStatus>, ApiError> {
    let name = function_name(&name)?;
    let f = node.store.function(&caller.tenant, &name).await?;
    let routes = node.routes.load();
    let entry = routes.function(caller.tenant.as_str(), name.as_str());
    let mut versions: Vec<(VersionId, VersionState)> = entry
        .map(|e| {
            e.versions
                .values()
                .map(|slot| {
                    let limit = slot.config.scaling.max_concurrency as usize;
                    let state = VersionState {
                        version: slot.version.to_string(),
                        loaded: slot.compiled.initialized(),
                        in_flight: limit.saturating_sub(slot.concurrency.available_permits()),
                        max_concurrency: limit,
                    };
                    (slot.version, state)
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|(version, _)| *version);
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
    Ok(Json(FunctionStatus {
        name,
        url: node.function_url(&f.tenant, &f.name, &f.route),
        route: f.route,
        ready,
        latest: latest.map(|v| v.to_string()),
        regions,
        versions: versions.into_iter().map(|(_, state)| state).collect(),
    }))
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
) -> Vec<RegionReadiness> {
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
    let mut by_region: std::collections::BTreeMap<String, Vec<NodeReadiness>> = Default::default();
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
            .push(NodeReadiness {
                id: n.id.clone(),
                ready,
                this_node: this,
            });
    }
    if !live.iter().any(|n| n.id == *node.node_id) {
        by_region
            .entry(node.region.to_string())
            .or_default()
            .push(NodeReadiness {
                id: node.node_id.to_string(),
                ready: ready_here,
                this_node: true,
            });
    }
    by_region
        .into_iter()
        .map(|(region, nodes)| RegionReadiness {
            this_region: region == *node.region,
            ready: nodes.iter().any(|n| n.ready),
            region,
            nodes,
        })
        .collect()
}
