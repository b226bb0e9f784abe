//! The admin API's OpenAPI 3.1 document, made from the handlers' `#[utoipa::path]`
//! annotations and the types they take and return, as the router is built: a route is
//! documented because it is served, with the role its group checks.
//! `GET /api/v1/openapi.json` serves it.

use std::sync::Arc;

use axum::Extension;
use axum::response::IntoResponse;
use glint_store::Role;
use http::header::CONTENT_TYPE;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr};
use utoipa::{Modify, ToSchema};

/// The name of the bearer-key scheme in the document.
pub const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Glint admin API",
        description = "Deploy and manage functions, versions, aliases, env vars, secrets, KV stores, \
                       API keys, logs and usage on a Glint node. Every route but the public ones \
                       (`/healthz`, `/readyz`, `/version`, this document) needs \
                       `Authorization: Bearer <key>`; each operation's security requirement names \
                       the least role its key needs (`read` < `deploy` < `admin` < `operator`). \
                       Errors answer \
                       `{\"error\": {\"code\", \"message\"}}` with a stable code and a message that \
                       says what to do.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Bearer),
    components(schemas(ErrorBody)),
    tags(
        (name = "node", description = "This node, the nodes beside it, and their regions"),
        (name = "functions", description = "Functions, their versions, aliases and env vars"),
        (name = "logs", description = "Guest log lines"),
        (name = "usage", description = "Metered usage, recent statistics and Prometheus metrics"),
        (name = "kv", description = "KV stores and their keys"),
        (name = "secrets", description = "Secrets: names and times, never values"),
        (name = "keys", description = "API keys"),
        (name = "tenants", description = "Tenants: the operator's, and each key's own"),
    ),
)]
pub struct ApiDoc;

/// Adds the bearer scheme every secured operation refers to.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`glint keys create`); the node's first is in its data dir, \
                         file admin-key",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every error's body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `function_not_found`, `invalid_name`, `unauthorized`, ...
    pub code: String,
    /// For people: what went wrong and what to do.
    pub message: String,
    /// With `quota_exceeded`: the quota (`functions`, `versions_per_function`,
    /// `component_bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
}

/// Marks each operation of a role's group with the role it needs, and with the answers
/// the key check and the store can give any of them.
pub fn secure(api: &mut OpenApi, role: Role) {
    for item in api.paths.paths.values_mut() {
        for op in operations(item) {
            op.security = Some(vec![SecurityRequirement::new(BEARER, [role.as_str()])]);
            let mut answers = vec![(
                "401",
                "No key, or a key that is invalid or revoked (`unauthorized`)",
            )];
            if role > Role::Read {
                answers.push((
                    "403",
                    "The key's role is below the one this operation needs (`forbidden`), or its \
                     tenant is suspended and may only read (`tenant_suspended`)",
                ));
            }
            answers.push((
                "500",
                "The node failed inside (`internal`, `storage_error`); the message has an incident id for its log",
            ));
            answers.push((
                "503",
                "The store cannot be reached now (`region_unreachable`); try again",
            ));
            for (status, description) in answers {
                add_error(op, status, description);
            }
        }
    }
}

/// States the refusals of the extractors (`extract.rs`) on each operation that has
/// them: 400 for a parameter that does not parse, and 400 and 415 for a JSON body that
/// does not.
pub fn state_refusals(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        for op in operations(item) {
            let json_body = op.request_body.as_ref().is_some_and(|body| match body {
                RefOr::T(body) => body.content.contains_key("application/json"),
                RefOr::Ref(_) => false,
            });
            if json_body {
                add_error(
                    op,
                    "415",
                    "The body is not sent as `application/json` (`unsupported_media_type`)",
                );
                add_error(op, "413", "The body is too large (`limit_exceeded`)");
            }
            let has_parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if has_parameters || json_body {
                add_error(
                    op,
                    "400",
                    "A parameter or the body is invalid (`invalid_query`, `invalid_path`, `invalid_body`, `invalid_name`, ...)",
                );
            }
        }
    }
}

/// Each operation a path item has.
pub fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.head,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Adds an error answer with the error body, unless the operation states its own.
fn add_error(op: &mut Operation, status: &str, description: &str) {
    if op.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build();
    op.responses
        .responses
        .insert(status.to_string(), RefOr::T(response));
}

/// The OpenAPI form of an axum path: `{*key}` (the rest of the path) is `{key}`.
pub fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// Rewrites the document's axum paths in OpenAPI's form (see [`openapi_path`]).
pub fn rename_paths(api: &mut OpenApi) {
    let paths = std::mem::take(&mut api.paths.paths);
    for (path, item) in paths {
        api.paths.paths.insert(openapi_path(&path), item);
    }
}

/// The document as served: JSON, made once when the router is built.
#[derive(Clone)]
pub struct Document(pub Arc<str>);

impl Document {
    pub fn new(api: &OpenApi) -> Self {
        // The document is plain data: it always serializes.
        Self(api.to_pretty_json().unwrap_or_default().into())
    }
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "node",
    responses((status = 200, description = "This document, OpenAPI 3.1", content_type = "application/json")),
)]
pub async fn document(Extension(doc): Extension<Document>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], doc.0.to_string())
}
