//! Tenants: the node's first key is the operator's, which makes tenants; a tenant's
//! admin manages its own functions and keys and sees nothing of anyone else's.

use glint_e2e::{Node, guest};
use serde_json::{Value, json};

fn manifest(route: &str) -> String {
    format!("route = \"{route}\"\n")
}

async fn make_key(admin: &glint_e2e::Admin, path: &str, name: &str, role: &str) -> (u16, Value) {
    let req = admin
        .request(reqwest::Method::POST, path)
        .json(&json!({ "name": name, "role": role }));
    admin.send(req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_makes_tenants_whose_admins_manage_only_their_own() {
    let node = Node::start_with_args(&["--base-domain", "fn.test"]);
    let operator = node.admin();
    let (status, keys) = operator.get("/api/v1/keys").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(keys["keys"][0]["role"], "operator", "the first key: {keys}");

    // `glint tenants create NAME --output json` prints the tenant and its key, only.
    let (ok, out, err) = node.cli(
        &node.key,
        &["tenants", "create", "acme", "--output", "json"],
    );
    assert!(ok, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let fields: Vec<&String> = made.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["key", "tenant"], "{out}");
    assert_eq!(made["tenant"], "acme");
    let acme = node.admin_with_key(made["key"].as_str());

    let (status, own) = acme.get("/api/v1/tenant").await;
    assert_eq!(
        (status, own["id"].clone(), own["status"].clone()),
        (200, json!("acme"), json!("active"))
    );
    let (status, acme_keys) = acme.get("/api/v1/keys").await;
    assert_eq!(status, 200);
    let acme_keys = acme_keys["keys"].as_array().unwrap().clone();
    assert_eq!(acme_keys.len(), 1, "{acme_keys:?}");
    assert_eq!(acme_keys[0]["role"], "admin");

    // Each tenant sees its own functions only, even under the same name.
    operator
        .deploy_ok("hello", &manifest("/hello"), guest("hello"))
        .await;
    let (status, body) = acme.get("/api/v1/functions/hello").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("function_not_found")),
        "{body}"
    );
    acme.deploy_ok("hello", &manifest("/acme-hello"), guest("hello"))
        .await;
    for (who, route) in [(&operator, "/hello"), (&acme, "/acme-hello")] {
        let (_, list) = who.get("/api/v1/functions").await;
        let routes: Vec<&str> = list["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["route"].as_str().unwrap())
            .collect();
        assert_eq!(routes, [route]);
    }
    assert_eq!(node.call_host("acme.fn.test", "/acme-hello").await.0, 200);

    // A tenant's admin manages its own keys, up to its own role, and no tenants.
    let (status, body) = make_key(&acme, "/api/v1/keys", "ci", "operator").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    let (status, body) = make_key(&acme, "/api/v1/keys", "ci", "deploy").await;
    assert_eq!(status, 201, "{body}");
    for path in [
        "/api/v1/tenants",
        "/api/v1/tenants/acme",
        "/api/v1/tenants/default",
    ] {
        let (status, body) = acme.get(path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = make_key(&acme, "/api/v1/tenants/acme/keys", "x", "admin").await;
    assert_eq!(status, 403, "{body}");

    // An admin of the operator's own tenant is not an operator.
    let (status, body) = make_key(&operator, "/api/v1/keys", "default-admin", "admin").await;
    assert_eq!(status, 201, "{body}");
    let default_admin = node.admin_with_key(body["key"].as_str());
    let (status, body) = default_admin.get("/api/v1/tenants").await;
    assert_eq!(status, 403, "{body}");
    // Nor can it take the operator's key away.
    let operator_key_id = keys["keys"][0]["id"].as_str().unwrap();
    let (status, body) = default_admin
        .delete(&format!("/api/v1/keys/{operator_key_id}"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    let (_, still) = operator.get("/api/v1/keys").await;
    assert_eq!(still["keys"][0]["id"], operator_key_id, "{still}");

    // The operator lists, shows and gives keys to tenants; names are checked.
    let (ok, out, err) = node.cli(&node.key, &["tenants", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("acme") && out.contains("default"), "{out}");
    let (status, shown) = operator.get("/api/v1/tenants/acme").await;
    assert_eq!((status, shown["id"].clone()), (200, json!("acme")));
    let (status, body) = operator.get("/api/v1/tenants/nobody").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found")),
        "{body}"
    );
    let (status, body) = make_key(&operator, "/api/v1/tenants/acme/keys", "lost", "admin").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = make_key(&operator, "/api/v1/tenants/acme/keys", "x", "operator").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    let (status, body) = make_key(&operator, "/api/v1/tenants/nobody/keys", "x", "admin").await;
    assert_eq!(status, 404, "{body}");
    let create = |name: &'static str| {
        let req = operator
            .request(reqwest::Method::POST, "/api/v1/tenants")
            .json(&json!({ "name": name }));
        operator.send(req)
    };
    let (status, body) = create("acme").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
    for bad in ["Acme", "-acme", "acme-", "a_b", ""] {
        let (status, body) = create(bad).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (400, json!("invalid_name")),
            "{bad:?}: {body}"
        );
    }
    let (ok, _, err) = node.cli(made["key"].as_str().unwrap(), &["tenants", "list"]);
    assert!(!ok && err.contains("operator"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_from_before_tenants_makes_its_own_key_the_operators() {
    let mut node = Node::start();
    assert!(node.stop());
    // The node's key as a node before the operator role made it: an admin.
    {
        let url: glint_store::StoreUrl = node.store_url().parse().unwrap();
        let stores = glint_store::Stores::open(&url, Default::default())
            .await
            .unwrap();
        let tenant = glint_store::TenantId::default_tenant();
        let keys = stores.keys.keys(&tenant).await.unwrap();
        assert_eq!(keys.len(), 1);
        stores
            .keys
            .set_key_role(&tenant, &keys[0].id, glint_store::Role::Admin)
            .await
            .unwrap();
        assert_eq!(
            stores.keys.keys(&tenant).await.unwrap()[0].role,
            glint_store::Role::Admin
        );
        stores.close().await.unwrap();
    }
    node.restart();
    let (status, keys) = node.admin().get("/api/v1/keys").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(keys["keys"][0]["role"], "operator", "{keys}");
    let (status, body) = node.admin().get("/api/v1/tenants").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        node.log().contains("is now an operator key"),
        "{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_tenants_functions_answer_403_and_keep_their_data() {
    let node = Node::start_with_args(&["--base-domain", "fn.test"]);
    let operator = node.admin();
    let (acme, _) = node.tenant("acme").await;
    let counter =
        std::fs::read_to_string(glint_e2e::repo_root().join("examples/counter/glint.toml"))
            .unwrap();
    acme.deploy_ok(
        "counter",
        &counter.replace(
            "name = \"counter\"",
            "name = \"counter\"\nroute = \"/acme-counter\"",
        ),
        guest("counter"),
    )
    .await;
    operator
        .deploy_ok("hello", &manifest("/hello"), guest("hello"))
        .await;
    let count = |method: reqwest::Method| {
        node.send_to(
            Some("acme.fn.test"),
            method,
            "/acme-counter/hits",
            Vec::new(),
        )
    };
    assert_eq!(count(reqwest::Method::POST).await, (200, "1\n".into()));

    let (ok, out, err) = node.cli(&node.key, &["tenants", "suspend", "acme"]);
    assert!(ok && out.contains("suspended"), "{out}{err}");
    // Its functions answer 403 with the reason; other tenants' serve on.
    let (status, body) = count(reqwest::Method::GET).await;
    assert_eq!(status, 403, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "tenant_suspended", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("acme"),
        "{body}"
    );
    assert_eq!(node.call("/hello").await.0, 200);
    // Its keys read, and change nothing.
    let (status, functions) = acme.get("/api/v1/functions").await;
    assert_eq!(status, 200, "{functions}");
    let (status, value) = acme.get("/api/v1/kv").await;
    assert_eq!(status, 200, "{value}");
    let (status, body) = acme
        .deploy("hello", &manifest("/acme-hello"), guest("hello"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("tenant_suspended")),
        "{body}"
    );
    let (status, body) = acme
        .put("/api/v1/secrets/TOKEN", json!({ "value": "x" }))
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, shown) = operator.get("/api/v1/tenants/acme").await;
    assert_eq!(shown["status"], "suspended");

    // The operator's own tenant is never suspended; a missing one is not found.
    for (path, status) in [
        ("/api/v1/tenants/default/suspend", 409),
        ("/api/v1/tenants/nobody/suspend", 404),
    ] {
        let (got, body) = operator
            .send(operator.request(reqwest::Method::POST, path))
            .await;
        assert_eq!(got, status, "{path}: {body}");
    }

    // Resumed, it serves with its data as it was.
    let (ok, out, err) = node.cli(&node.key, &["tenants", "resume", "acme"]);
    assert!(ok && out.contains("active"), "{out}{err}");
    assert_eq!(count(reqwest::Method::POST).await, (200, "2\n".into()));
}

/// Polls `path` with `admin` until `done` accepts the body, for up to 30 s.
async fn wait_for(admin: &glint_e2e::Admin, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = admin.get(path).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never got there: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_tenant_removes_everything_and_counts_it() {
    let node = Node::start_with_args(&["--base-domain", "fn.test"]);
    let operator = node.admin();
    let (acme, _) = node.tenant("acme").await;
    // A tenant whose name starts with the other's.
    let (beta, _) = node.tenant("acme2").await;
    let counter =
        std::fs::read_to_string(glint_e2e::repo_root().join("examples/counter/glint.toml"))
            .unwrap();
    // Two versions of one component, a second function, three KV keys, a secret, a
    // second key, log lines and usage.
    for _ in 0..2 {
        acme.deploy_ok("counter", &counter, guest("counter")).await;
    }
    acme.deploy_ok("hello", &manifest("/hello"), guest("hello"))
        .await;
    beta.deploy_ok("hello", &manifest("/hello"), guest("hello"))
        .await;
    let on = |host: &'static str, method: reqwest::Method, path: &'static str| {
        node.send_to(Some(host), method, path, Vec::new())
    };
    for key in ["a", "b", "c"] {
        let path: &'static str = Box::leak(format!("/{key}").into_boxed_str());
        assert_eq!(
            on("counter.acme.fn.test", reqwest::Method::POST, path).await,
            (200, "1\n".into())
        );
    }
    assert_eq!(
        on("hello.acme.fn.test", reqwest::Method::GET, "/").await.0,
        200
    );
    let (status, body) = acme
        .put("/api/v1/secrets/TOKEN", json!({ "value": "sealed" }))
        .await;
    assert!(status < 300, "{body}");
    let (status, body) = make_key(&acme, "/api/v1/keys", "ci", "deploy").await;
    assert_eq!(status, 201, "{body}");
    wait_for(&acme, "/api/v1/usage?period=day", |u| {
        u["totals"]["requests"] == 4
    })
    .await;
    wait_for(&acme, "/api/v1/logs?function=hello", |l| {
        l["lines"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;

    // Off a terminal, only with --yes.
    let (ok, _, err) = node.cli(&node.key, &["tenants", "delete", "acme"]);
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, out, err) = node.cli(
        &node.key,
        &["tenants", "delete", "acme", "--yes", "--output", "json"],
    );
    assert!(ok, "{out}{err}");
    let deleted: Value = serde_json::from_str(&out).unwrap();
    let removed = &deleted["removed"];
    let size = guest("counter").len() + guest("hello").len();
    for (what, want) in [
        ("functions", 2),
        ("versions", 3),
        ("components", 2),
        ("component_bytes", size as u64),
        ("secrets", 1),
        ("keys", 2),
    ] {
        assert_eq!(removed[what], want, "{what}: {deleted}");
    }
    assert!(removed["log_records"].as_u64().unwrap() >= 1, "{deleted}");
    assert!(removed["usage_records"].as_u64().unwrap() >= 1, "{deleted}");
    assert_eq!(deleted["kv"]["stores"], 1, "{deleted}");
    assert_eq!(deleted["kv"]["keys"], 3, "{deleted}");
    assert!(deleted["kv"]["bytes"].as_u64().unwrap() > 0, "{deleted}");
    assert_eq!(deleted["complete"], true, "{deleted}");
    // This month's and last month's: the calls may straddle the turn of a month.
    let months = &deleted["final_usage"];
    assert_eq!(
        months[0]["requests"].as_u64().unwrap() + months[1]["requests"].as_u64().unwrap(),
        4,
        "{deleted}"
    );

    // Nothing of it answers; the other tenants serve on.
    assert_eq!(
        on("counter.acme.fn.test", reqwest::Method::GET, "/a")
            .await
            .0,
        404
    );
    assert_eq!(acme.get("/api/v1/functions").await.0, 401);
    assert_eq!(operator.get("/api/v1/tenants/acme").await.0, 404);
    assert_eq!(
        on("hello.acme2.fn.test", reqwest::Method::GET, "/").await.0,
        200
    );
    // Made again, the name is empty.
    let (again, _) = node.tenant("acme").await;
    for (path, field) in [
        ("/api/v1/functions", "functions"),
        ("/api/v1/kv", "stores"),
        ("/api/v1/secrets", "secrets"),
    ] {
        let (status, body) = again.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body[field], json!([]), "{path}: {body}");
    }
    let (_, usage) = again.get("/api/v1/usage?period=day").await;
    assert_eq!(usage["totals"]["requests"], 0, "{usage}");
    let (_, keys) = again.get("/api/v1/keys").await;
    // Its first admin key alone: the old tenant's two are gone.
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");
    assert_ne!(keys["keys"][0]["name"], "ci", "{keys}");

    // The operator's own tenant is never deleted; a missing one is not found.
    for (path, status) in [
        ("/api/v1/tenants/default", 409),
        ("/api/v1/tenants/nobody", 404),
    ] {
        let (got, body) = operator.delete(path).await;
        assert_eq!(got, status, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_past_a_tenants_quotas_are_refused_naming_the_quota() {
    let node = Node::start();
    let operator = node.admin();
    let (acme, _) = node.tenant("acme").await;
    let (ok, out, err) = node.cli(
        &node.key,
        &[
            "tenants",
            "quota",
            "acme",
            "--functions",
            "2",
            "--versions",
            "2",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{out}{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["effective_quotas"],
        json!({
            "functions": 2,
            "versions_per_function": 2,
            "component_bytes": 1u64 << 30,
            "requests_per_second": 1000,
            "instances_per_node": 250,
        }),
        "{shown}"
    );
    let refused = |body: &Value, quota: &str| {
        assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
        assert_eq!(body["error"]["quota"], quota, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("acme"),
            "{body}"
        );
    };
    let hello = guest("hello");
    for _ in 0..2 {
        acme.deploy_ok("a", &manifest("/a"), hello.clone()).await;
    }
    let (status, body) = acme.deploy("a", &manifest("/a"), hello.clone()).await;
    assert_eq!(status, 403, "{body}");
    refused(&body, "versions_per_function");
    acme.deploy_ok("b", &manifest("/b"), hello.clone()).await;
    let (status, body) = acme.deploy("c", &manifest("/c"), hello.clone()).await;
    assert_eq!(status, 403, "{body}");
    refused(&body, "functions");

    // Component bytes count each component once: the same one again adds nothing.
    let (status, body) = operator
        .put(
            "/api/v1/tenants/acme/quotas",
            json!({ "functions": 5, "component_bytes": hello.len() + 1000 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = acme.deploy("c", &manifest("/c"), guest("counter")).await;
    assert_eq!(status, 403, "{body}");
    refused(&body, "component_bytes");
    acme.deploy_ok("c", &manifest("/c"), hello.clone()).await;
    // A refused deploy stored nothing.
    let (_, functions) = acme.get("/api/v1/functions").await;
    assert_eq!(
        functions["functions"].as_array().unwrap().len(),
        3,
        "{functions}"
    );
    let (_, versions) = acme.get("/api/v1/functions/a/versions").await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        2,
        "{versions}"
    );

    // A tenant reads its own; the operator's own tenant has no limits unless set.
    let (_, own) = acme.get("/api/v1/tenant").await;
    assert_eq!(own["effective_quotas"]["functions"], 5, "{own}");
    let (_, own) = operator.get("/api/v1/tenant").await;
    assert_eq!(own["effective_quotas"], json!({}), "{own}");
    // Only the operator sets them, and --reset brings the defaults back.
    let (status, _) = acme
        .put("/api/v1/tenants/acme/quotas", json!({ "functions": 1000 }))
        .await;
    assert_eq!(status, 403);
    let (ok, out, err) = node.cli(
        &node.key,
        &["tenants", "quota", "acme", "--reset", "--output", "json"],
    );
    assert!(ok, "{out}{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["quotas"], json!({}), "{shown}");
    assert_eq!(shown["effective_quotas"]["functions"], 100, "{shown}");
    // An unknown quota is refused by name.
    let (status, body) = operator
        .put("/api/v1/tenants/acme/quotas", json!({ "fnuctions": 3 }))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("fnuctions"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_flooding_past_its_rate_never_slows_another() {
    use futures::StreamExt;
    let node = Node::start_with_args(&["--base-domain", "fn.test"]);
    let operator = node.admin();
    let (flood, _) = node.tenant("flood").await;
    let (calm, _) = node.tenant("calm").await;
    for tenant in [&flood, &calm] {
        tenant
            .deploy_ok("hello", &manifest("/hello"), guest("hello"))
            .await;
    }
    let (status, body) = operator
        .put(
            "/api/v1/tenants/flood/quotas",
            json!({ "requests_per_second": 5 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let client = reqwest::Client::new();
    let call = |host: &'static str| {
        let req = client
            .get(format!("{}/", node.data_url))
            .header(reqwest::header::HOST, host);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u32>().ok());
            let body = resp.text().await.unwrap();
            (status, retry_after, body)
        }
    };
    // 300 calls of flood's over 16 connections, while calm calls 100 times, one by one.
    let flooding = futures::stream::iter(0..300)
        .map(|_| call("hello.flood.fn.test"))
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let calm_calls = async {
        let mut out = Vec::new();
        for _ in 0..100 {
            out.push(call("hello.calm.fn.test").await);
        }
        out
    };
    let (flooded, calmed) = tokio::join!(flooding, calm_calls);
    for (status, _, body) in &calmed {
        assert_eq!(*status, 200, "calm was refused: {body}");
    }
    let served = flooded.iter().filter(|(s, _, _)| *s == 200).count();
    let refused: Vec<_> = flooded.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(served + refused.len(), 300, "{flooded:?}");
    assert!(served >= 1 && !refused.is_empty(), "{served} served");
    for (_, retry_after, body) in &refused {
        assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["quota"], "requests_per_second", "{body}");
    }
    // Refused calls are not billed: the usage counts the served ones alone.
    wait_for(&flood, "/api/v1/usage?period=day", |u| {
        u["totals"]["requests"] == served as u64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_at_its_instances_quota_gets_429_while_another_runs() {
    let node = Node::start_with_args(&["--base-domain", "fn.test"]);
    let operator = node.admin();
    let (busy, _) = node.tenant("busy").await;
    let (other, _) = node.tenant("other").await;
    let manifest = "[scaling]\nmax_queue_ms = 200\n[limits]\ntimeout_ms = 20000\n";
    for tenant in [&busy, &other] {
        tenant
            .deploy_ok("misbehave", manifest, guest("misbehave"))
            .await;
    }
    let (status, body) = operator
        .put(
            "/api/v1/tenants/busy/quotas",
            json!({ "instances_per_node": 1 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Its one instance taken by a guest that sleeps.
    let sleeper = tokio::spawn(
        reqwest::Client::new()
            .get(format!("{}/sleep?ms=8000", node.data_url))
            .header(reqwest::header::HOST, "misbehave.busy.fn.test")
            .send(),
    );
    wait_for(&busy, "/api/v1/logs?function=misbehave", |l| {
        l.to_string().contains("sleeping")
    })
    .await;
    let call = |host| node.send_to(Some(host), reqwest::Method::GET, "/", Vec::new());
    let (status, body) = call("misbehave.busy.fn.test").await;
    assert_eq!(status, 429, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["quota"], "instances_per_node", "{body}");
    assert_eq!(call("misbehave.other.fn.test").await, (200, "ok\n".into()));
    // Its instance back, it runs again.
    let slept = sleeper.await.unwrap().unwrap();
    assert_eq!(slept.status(), 200);
    assert_eq!(call("misbehave.busy.fn.test").await, (200, "ok\n".into()));
}
