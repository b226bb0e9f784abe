//! Isolation between tenants, as a matrix: every operation of the OpenAPI document, with
//! a key of each role of tenant A aimed at tenant B's records, never reads or changes
//! them; on the data plane, A's functions never see B's KV store or secrets of the same
//! name; `/metrics` shows a tenant its own series only.

use glint_e2e::{Admin, Node, guest, repo_root};
use serde_json::{Value, json};

/// Values only B's records hold: no answer to A may contain one.
const MARKERS: [&str; 5] = [
    "B-MARKER-GREETING",
    "B-MARKER-ENV",
    "B-MARKER-KV",
    "b-marker-key",
    "/b-marker-route",
];

fn counter_manifest() -> String {
    std::fs::read_to_string(repo_root().join("examples/counter/glint.toml")).unwrap()
}

async fn make_key(admin: &Admin, name: &str, role: &str) -> (String, String) {
    let req = admin
        .request(reqwest::Method::POST, "/api/v1/keys")
        .json(&json!({ "name": name, "role": role }));
    let (status, made) = admin.send(req).await;
    assert_eq!(status, 201, "{made}");
    (
        made["key"].as_str().unwrap().to_string(),
        made["id"].as_str().unwrap().to_string(),
    )
}

/// What B has, as B's admin reads it.
async fn snapshot(b: &Admin) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/functions",
        "/api/v1/functions/hello",
        "/api/v1/functions/hello/env",
        "/api/v1/kv",
        "/api/v1/kv/s/keys",
        "/api/v1/keys",
        "/api/v1/secrets",
        "/api/v1/tenant",
    ] {
        out.push(b.get(path).await);
    }
    let value = b
        .http
        .get(format!("{}/api/v1/kv/s/keys/k", b.base))
        .bearer_auth(b.key.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    out.push((value.status().as_u16(), json!(value.text().await.unwrap())));
    out
}

/// A path of the document aimed at B's records.
fn aimed_at_b(path: &str, b_key_id: &str) -> String {
    let values = [
        ("name", "hello"),
        ("version", "v1"),
        ("alias", "live"),
        ("store", "s"),
        ("id", b_key_id),
        ("tenant", "b"),
    ];
    glint_e2e::fill_path(path, &values, "k", "MARKER_ENV")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_keys_never_reach_another_tenants_records() {
    let node = Node::start_with_args(&["--base-domain", "fn.test"]);
    let (b, _) = node.tenant("b").await;
    let (a_admin, a_admin_key) = node.tenant("a").await;

    // B's records, each holding a marker.
    let manifest = "route = \"/b-marker-route\"\n[env]\nGREETING = \"B-MARKER-GREETING\"\n";
    b.deploy_ok("hello", manifest, guest("hello")).await;
    let (status, body) = b
        .put(
            "/api/v1/functions/hello/aliases/live",
            json!({ "versions": { "v1": 1 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = b
        .put(
            "/api/v1/functions/hello/env/MARKER_ENV",
            json!({ "value": "B-MARKER-ENV" }),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(b.put("/api/v1/kv/s", json!({})).await.0, 204);
    let put_value = b
        .request(reqwest::Method::PUT, "/api/v1/kv/s/keys/k")
        .body("B-MARKER-KV");
    assert_eq!(b.send(put_value).await.0, 204);
    assert_eq!(
        b.put(
            "/api/v1/secrets/TOKEN",
            json!({ "value": "B-MARKER-SECRET" })
        )
        .await
        .0,
        204
    );
    let (_, b_key_id) = make_key(&b, "b-marker-key", "read").await;
    assert_eq!(node.call_host("hello.b.fn.test", "/").await.0, 200);
    let before = snapshot(&b).await;
    assert!(
        format!("{before:?}").contains("B-MARKER-KV"),
        "the snapshot reads B's records: {before:?}"
    );

    // A's keys of each role.
    let (a_read, _) = make_key(&a_admin, "a-read", "read").await;
    let (a_deploy, _) = make_key(&a_admin, "a-deploy", "deploy").await;
    let a_keys = [
        ("read", a_read),
        ("deploy", a_deploy),
        ("admin", a_admin_key),
    ];

    let doc: Value = node.admin().get("/api/v1/openapi.json").await.1;
    let mut operations: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"].is_array() && path != "/api/v1/logs/stream" {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    // Reads first, while A has made nothing; then writes, which make A's own records
    // (A's `hello`, A's store `s`); deletes last, which may delete those.
    operations.sort_by_key(|(method, _)| match method.as_str() {
        "GET" => 0,
        "DELETE" => 2,
        _ => 1,
    });
    assert!(operations.len() >= 40, "{operations:?}");

    let mut tried = 0;
    for (method, path) in &operations {
        let url = aimed_at_b(path, &b_key_id);
        let query = if path.contains("/stats/series")
            || path == "/api/v1/usage"
            || path == "/api/v1/logs"
        {
            "?function=hello"
        } else {
            ""
        };
        for (role, key) in &a_keys {
            let a = node.admin_with_key(Some(key));
            let mut req = a.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                &format!("{url}{query}"),
            );
            req = match (method.as_str(), path.as_str()) {
                ("PUT", p) if p.contains("/kv/") && p.contains("/keys/") => req.body("from A"),
                ("PUT", p) if p.contains("/aliases/") => {
                    req.json(&json!({ "versions": { "v1": 1 } }))
                }
                ("PUT", _) => req.json(&json!({ "value": "from A" })),
                ("POST", p) if p.ends_with("/versions") => req
                    .header("content-type", "application/wasm")
                    .body(guest("hello")),
                ("POST", _) => req.json(&json!({ "name": "from-a", "role": "read" })),
                _ => req,
            };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            let what = format!("{method} {url}{query} with A's {role} key");
            assert!(status < 500, "{what}: {status} {body}");
            for marker in MARKERS {
                assert!(!body.contains(marker), "{what} shows B's {marker}: {body}");
            }
            // A read of a record by its id, before A made any: B's is not there for A.
            if path.contains('{') && method == "GET" {
                assert!(matches!(status, 403 | 404), "{what}: {status} {body}");
            }
            tried += 1;
        }
    }
    assert!(tried >= 120, "{tried}");
    assert_eq!(snapshot(&b).await, before, "B's records changed");

    // The data plane: the same store name and secret name are each tenant's own.
    b.deploy_ok("counter", &counter_manifest(), guest("counter"))
        .await;
    a_admin
        .deploy_ok("counter", &counter_manifest(), guest("counter"))
        .await;
    for _ in 0..3 {
        let hit = node
            .send_to(
                Some("counter.b.fn.test"),
                reqwest::Method::POST,
                "/x",
                Vec::new(),
            )
            .await;
        assert_eq!(hit.0, 200, "{hit:?}");
    }
    assert_eq!(
        node.call_host("counter.a.fn.test", "/x").await,
        (200, "0\n".into())
    );
    assert_eq!(
        node.call_host("counter.b.fn.test", "/x").await,
        (200, "3\n".into())
    );
    let (status, body) = a_admin
        .deploy(
            "wants-token",
            "route = \"/t\"\nsecrets = [\"TOKEN\"]\n",
            guest("hello"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("secret_not_set")),
        "{body}"
    );

    // /metrics: a tenant's key sees its own series; the operator's every tenant's.
    let metrics = |key: &str| {
        let admin = node.admin_with_key(Some(key));
        async move { admin.get_text("/metrics").await }
    };
    let a_metrics = metrics(&a_keys[0].1).await;
    assert!(a_metrics.contains("tenant=\"a\""), "{a_metrics}");
    assert!(!a_metrics.contains("tenant=\"b\""), "{a_metrics}");
    assert!(
        !a_metrics.contains("\nglint_process"),
        "node-wide series are the operator's: {a_metrics}"
    );
    let all = metrics(&node.key).await;
    assert!(
        all.contains("tenant=\"a\"") && all.contains("tenant=\"b\""),
        "{all}"
    );
    // And the node's counts: A's own.
    let (_, status) = node
        .admin_with_key(Some(&a_keys[0].1))
        .get("/api/v1/node")
        .await;
    assert_eq!(status["functions"], 1, "{status}");
    let (_, nodes) = node
        .admin_with_key(Some(&a_keys[0].1))
        .get("/api/v1/nodes")
        .await;
    assert_eq!(nodes["nodes"][0]["functions"], Value::Null, "{nodes}");
}
