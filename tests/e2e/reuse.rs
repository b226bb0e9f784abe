//! Instance reuse (`[scaling] reuse = true`) end to end: what a kept instance remembers,
//! and where that memory must stop. The `caps` fixtures count, in module state, the
//! requests their instance has served (`GET /instance`), so a fresh instance answers 1.

use glint_e2e::{Node, built, guest};

const REUSE: &str = "[scaling]\nreuse = true\n";

async fn count(node: &Node, function: &str) -> String {
    let (status, body) = node.call(&format!("/{function}/instance")).await;
    assert_eq!(status, 200, "{function}: {body}");
    body
}

async fn counts(node: &Node, function: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(count(node, function).await);
    }
    out
}

async fn node_stat(node: &Node, name: &str) -> u64 {
    let (_, status) = node.admin().get("/api/v1/node").await;
    status[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} missing: {status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_serves_one_function_and_is_retired_by_its_rules() {
    let node = Node::start();
    let admin = node.admin();
    let caps = guest("caps");
    // `a` and `b` run the very same component: only the function keeps them apart.
    admin
        .deploy_ok(
            "a",
            &format!("{REUSE}reuse_max_requests = 5\n"),
            caps.clone(),
        )
        .await;
    admin
        .deploy_ok(
            "b",
            &format!("{REUSE}reuse_max_seconds = 1\n"),
            caps.clone(),
        )
        .await;
    admin.deploy_ok("fresh", "", caps.clone()).await;

    // State survives between requests of one function, and only there.
    assert_eq!(counts(&node, "a", 3).await, ["1", "2", "3"]);
    assert_eq!(count(&node, "b").await, "1", "b must not get a's instance");
    assert_eq!(count(&node, "b").await, "2");
    assert_eq!(
        counts(&node, "fresh", 2).await,
        ["1", "1"],
        "reuse is opt-in"
    );
    assert_eq!(counts(&node, "a", 2).await, ["4", "5"]);
    // Five requests served: that instance is retired, and the sixth starts afresh.
    assert_eq!(count(&node, "a").await, "1");

    // A trap throws the instance away: the next request does not see its state.
    assert_eq!(count(&node, "a").await, "2");
    let (status, body) = node.call("/a/instance/panic").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        count(&node, "a").await,
        "1",
        "a trapped instance was reused"
    );

    // Retired by age: b's instance is over a second old.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        count(&node, "b").await,
        "1",
        "an expired instance was reused"
    );

    // A change of env (or secrets) starts new instances: the old ones saw the old values.
    assert_eq!(count(&node, "a").await, "2");
    let (status, body) = admin
        .put(
            "/api/v1/functions/a/env/MODE",
            serde_json::json!({ "value": "new" }),
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    assert_eq!(
        count(&node, "a").await,
        "1",
        "an instance outlived an env change"
    );

    // A redeploy of the same bytes is a new version with its own instances.
    admin.deploy_ok("a", REUSE, caps).await;
    assert_eq!(count(&node, "a").await, "1");

    assert!(node_stat(&node, "instance_reuses").await >= 6);
    assert!(node_stat(&node, "instances_idle").await >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_logs_under_each_request_s_own_execution_id() {
    let node = Node::start();
    let admin = node.admin();
    admin
        .deploy_ok(
            "logger",
            &format!("{REUSE}[env]\nWHO = \"reuse-test\"\n"),
            guest("caps"),
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = node.get("/logger/print/WHO").await;
        assert_eq!(resp.status(), 204);
        ids.push(
            resp.headers()["x-glint-execution-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(count(&node, "logger").await, "1"); // `print` does not count, but ran in it
    for id in &ids {
        let mine = admin
            .wait_for_logs("logger", id, |lines| !lines.is_empty())
            .await;
        assert_eq!(mine.len(), 1, "request {id} should have one line: {mine:?}");
        assert!(
            mine[0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("reuse-test"),
            "{mine:?}"
        );
    }
    assert!(node_stat(&node, "instance_reuses").await >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_instances_are_reused_when_asked() {
    let node = Node::start();
    let admin = node.admin();
    let component = built("tests/fixtures/caps-python", "caps-py");
    admin
        .deploy_ok(
            "caps-py",
            &format!("{REUSE}[kv]\nstores = [\"counters\"]\n"),
            component.clone(),
        )
        .await;
    admin.deploy_ok("caps-py-fresh", "", component).await;

    assert_eq!(counts(&node, "caps-py", 3).await, ["1", "2", "3"]);
    assert_eq!(counts(&node, "caps-py-fresh", 2).await, ["1", "1"]);
    // Host calls work on a kept instance as on a fresh one.
    for expected in ["1", "2"] {
        let (status, body) = node
            .send(
                reqwest::Method::POST,
                "/caps-py/kv/counters/hits/increment",
                Vec::new(),
            )
            .await;
        assert_eq!((status, body.as_str()), (200, expected));
    }
    // The same instance served the KV requests in between (they do not count).
    assert_eq!(count(&node, "caps-py").await, "4");
}

/// componentize-js 0.23's runtime hangs on a second request in one instance, so a JS
/// function asking for reuse is refused at deploy, by its manifest or by its bytes.
#[tokio::test(flavor = "multi_thread")]
async fn javascript_functions_are_refused_reuse_with_the_reason() {
    let node = Node::start();
    let admin = node.admin();
    let component = built("tests/fixtures/caps-js", "caps-js");
    for manifest in [REUSE.to_string(), format!("lang = \"js\"\n{REUSE}")] {
        let (status, body) = admin.deploy("caps-js", &manifest, component.clone()).await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("scaling.reuse"), "{body}");
        assert!(message.contains("Remove `reuse`"), "{body}");
    }
    // Nothing was stored; without reuse the same bytes deploy and serve.
    assert_eq!(admin.get("/api/v1/functions/caps-js").await.0, 404);
    admin.deploy_ok("caps-js", "", component).await;
    assert_eq!(counts(&node, "caps-js", 2).await, ["1", "1"]);
}
