//! The admin API's OpenAPI document, as a live node serves it: every route the node
//! serves is in it, every operation in it is served, and the role each operation states
//! is the one the node enforces.

use std::collections::BTreeSet;

use glint_e2e::{Node, repo_root};
use serde_json::{Value, json};

/// The operations anyone may call, without a key.
const PUBLIC: [&str; 4] = [
    "GET /healthz",
    "GET /readyz",
    "GET /version",
    "GET /api/v1/openapi.json",
];

/// Each operation in the document: method, path and the operation object.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("the document has paths") {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// A path of the document with a value for each parameter (a KV key may hold '/').
fn concrete(path: &str) -> String {
    let values = [
        ("name", "f"),
        ("version", "v1"),
        ("alias", "canary"),
        ("store", "s"),
        ("id", "key_000000000000"),
        ("tenant", "nobody"),
    ];
    glint_e2e::fill_path(path, &values, "a/b", "KEY")
}

/// The role an operation's security requirement names.
fn role_of(op: &Value) -> Option<String> {
    let scopes = op["security"].as_array()?.first()?["bearer"].as_array()?;
    assert_eq!(scopes.len(), 1, "one role per operation: {op}");
    scopes[0].as_str().map(str::to_string)
}

async fn document(node: &Node) -> Value {
    let resp = glint_e2e::http_client()
        .get(format!("{}/api/v1/openapi.json", node.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

async fn send(node: &Node, key: Option<&str>, method: &str, path: &str) -> (u16, Value) {
    let admin = node.admin_with_key(key);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = admin.request(method.clone(), path);
    if method == reqwest::Method::PUT || method == reqwest::Method::POST {
        req = req.json(&json!({}));
    }
    if path.ends_with("/logs/stream") {
        // Events until the client goes: the status is the answer.
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        if status == 200 {
            return (status, Value::Null);
        }
        return (status, resp.json().await.unwrap_or(Value::Null));
    }
    admin.send(req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_is_served_with_the_role_the_document_states() {
    let node = Node::start();
    let doc = document(&node).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let ops = operations(&doc);
    assert!(ops.len() >= 40, "only {} operations documented", ops.len());

    let admin = node.admin();
    let key_of = |role: &'static str| {
        let admin = &admin;
        async move {
            let req = admin
                .request(reqwest::Method::POST, "/api/v1/keys")
                .json(&json!({ "name": role, "role": role }));
            let (status, body) = admin.send(req).await;
            assert_eq!(status, 201, "{body}");
            body["key"].as_str().unwrap().to_string()
        }
    };
    let read = key_of("read").await;
    let deploy = key_of("deploy").await;
    let admin_key = key_of("admin").await;

    let mut public = BTreeSet::new();
    for (method, path, op) in &ops {
        let what = format!("{method} {path}");
        let url = concrete(path);
        // Never the fallback's answer, nor 405: the route exists with that method.
        let unknown = |status: u16, body: &Value| {
            status == 405
                || (status == 404
                    && body["error"]["code"] == "not_found"
                    && body["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("no such admin API route"))
        };
        let Some(role) = role_of(op) else {
            public.insert(what.clone());
            let (status, body) = send(&node, None, method, &url).await;
            assert_eq!(status, 200, "{what}: {body}");
            continue;
        };
        assert!(op["responses"]["401"].is_object(), "{what} states no 401");
        let (status, body) = send(&node, None, method, &url).await;
        assert_eq!(status, 401, "{what} without a key: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        // A key of each role below the stated one is refused; one of that role is not.
        let ranks = ["read", "deploy", "admin", "operator"];
        let rank = ranks
            .iter()
            .position(|r| *r == role)
            .unwrap_or_else(|| panic!("{what} states role {role:?}, not one of {ranks:?}"));
        let keys = [
            (&read, "read"),
            (&deploy, "deploy"),
            (&admin_key, "admin"),
            (&node.key, "operator"),
        ];
        for (key, key_role) in keys {
            let key_rank = ranks.iter().position(|r| *r == key_role).unwrap();
            let (status, body) = send(&node, Some(key), method, &url).await;
            assert!(
                !unknown(status, &body),
                "{what} is not served: {status} {body}"
            );
            if key_rank < rank {
                assert_eq!(status, 403, "{what} with a {key_role} key: {body}");
                assert!(op["responses"]["403"].is_object(), "{what} states no 403");
            } else {
                assert!(
                    status != 401 && status != 403,
                    "{what} with a {key_role} key: {status} {body}"
                );
            }
        }
    }
    let expected: BTreeSet<String> = PUBLIC.iter().map(|s| s.to_string()).collect();
    assert_eq!(public, expected, "the operations without a key");

    // And a route the document does not have is the fallback's.
    let (status, body) = send(&node, None, "GET", "/api/v1/nothing-here").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
}

/// The paths of `.route("...")` calls in the node's source: the routes registered by
/// hand, outside the OpenAPI router.
fn hand_registered_routes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![repo_root().join("crates/glint-node/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split(".route(\"").skip(1) {
                    let route = part.split('"').next().unwrap().to_string();
                    out.push((path.display().to_string(), route));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_outside_the_dashboard_is_documented() {
    let node = Node::start();
    let doc = document(&node).await;
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routes = hand_registered_routes();
    assert!(
        routes.iter().any(|(_, r)| r == "/dashboard"),
        "the scan finds the dashboard's routes: {routes:?}"
    );
    for (file, route) in routes {
        let dashboard = route == "/" || route.starts_with("/dashboard");
        assert!(
            dashboard || documented.contains(&route.replace("{*", "{")),
            "{file} serves {route}, which the OpenAPI document lacks: register it with \
             utoipa_axum's routes! and a #[utoipa::path]"
        );
    }
    // The dashboard's pages are HTML for people, not API: none is in the document.
    assert!(documented.iter().all(|p| !p.starts_with("/dashboard")));
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_and_parameters_that_do_not_parse_get_the_api_s_json_errors() {
    let node = Node::start();
    let admin = node.admin();
    let cases = [
        (
            admin
                .request(reqwest::Method::PUT, "/api/v1/secrets/TOKEN")
                .body("{\"value\": \"x\"}"),
            415,
            "unsupported_media_type",
        ),
        (
            admin
                .request(reqwest::Method::PUT, "/api/v1/secrets/TOKEN")
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_body",
        ),
        (
            admin
                .request(reqwest::Method::PUT, "/api/v1/secrets/TOKEN")
                .json(&json!({ "value": 7 })),
            400,
            "invalid_body",
        ),
        (
            admin.request(reqwest::Method::GET, "/api/v1/logs?lines=many"),
            400,
            "invalid_query",
        ),
        (
            admin.request(reqwest::Method::GET, "/api/v1/stats/series"),
            400,
            "invalid_query",
        ),
    ];
    for (req, status, code) in cases {
        let resp = req.send().await.unwrap();
        let what = format!(
            "{} {}",
            resp.url().path(),
            resp.url().query().unwrap_or_default()
        );
        assert_eq!(resp.status().as_u16(), status, "{what}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
}
