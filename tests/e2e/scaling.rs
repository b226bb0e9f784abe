//! Scaling on one node, end to end.
//!
//! - Instance reuse (`[scaling] reuse = true`): what a kept instance remembers, and where
//!   that memory must stop. The `caps` fixtures count, in module state, the requests
//!   their instance has served (`GET /instance`), so a fresh instance answers 1.
//!   Python and JS (through the JS SDK's own HTTP entry point) reuse alike.
//! - Eviction of compiled code: idle versions leave memory and come back from the compile
//!   cache, the least recently used go beyond `--max-loaded-versions`, and
//!   `min_instances` pins a version in memory.

use std::time::{Duration, Instant};

use glint_e2e::{Node, built, custom_section, guest, wait_until};

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

    // A change that leaves a's config and env as they were (a secret a does not read
    // rebuilds every function of the tenant) keeps its instance warm.
    assert!(eventually(|| async { node_stat(&node, "instances_idle").await >= 1 }).await);
    let (status, body) = admin
        .put(
            "/api/v1/secrets/UNREAD",
            serde_json::json!({ "value": "not for a" }),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        count(&node, "a").await,
        "2",
        "a rebuild that changed nothing of a's dropped its instance"
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
    for i in 0..3 {
        // The client has its response before the guest's task puts the instance back:
        // wait for it to be idle, so this request reuses it rather than racing it.
        if i > 0 {
            assert!(eventually(|| async { node_stat(&node, "instances_idle").await >= 1 }).await);
        }
        let resp = node.get("/logger/print/WHO").await;
        assert_eq!(resp.status(), 204);
        ids.push(
            resp.headers()["x-glint-execution-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(eventually(|| async { node_stat(&node, "instances_idle").await >= 1 }).await);
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
async fn python_and_js_instances_are_reused_when_asked() {
    let node = Node::start();
    let admin = node.admin();
    for (kept_before, (name, component)) in [
        ("caps-py", built("tests/fixtures/caps-python", "caps-py")),
        ("caps-js", built("tests/fixtures/caps-js", "caps-js")),
    ]
    .into_iter()
    .enumerate()
    {
        admin
            .deploy_ok(
                name,
                &format!("{REUSE}[kv]\nstores = [\"counters\"]\n"),
                component.clone(),
            )
            .await;
        let fresh = format!("{name}-fresh");
        admin.deploy_ok(&fresh, "", component).await;
        // The node's kept instances once this function's is back in its pool: the
        // Python one's, then the JS one's too. Each request below waits for it, as a
        // client quicker than the instance's return would get a fresh one.
        let kept = kept_before + 1;

        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(count(&node, name).await);
            wait_for_idle(&node, kept).await;
        }
        assert_eq!(seen, ["1", "2", "3"], "{name}");
        assert_eq!(counts(&node, &fresh, 2).await, ["1", "1"], "{fresh}");
        // Host calls, request bodies and error answers work on a kept instance as on a
        // fresh one.
        for expected in ["1", "2"] {
            let path = format!("/{name}/kv/counters/{name}-hits/increment");
            let (status, body) = node.send(reqwest::Method::POST, &path, Vec::new()).await;
            assert_eq!((status, body.as_str()), (200, expected), "{name}");
            wait_for_idle(&node, kept).await;
        }
        let path = format!("/{name}/kv/counters/{name}-greeting");
        let put = node
            .send(reqwest::Method::PUT, &path, b"hello, body".to_vec())
            .await;
        assert_eq!(put.0, 204, "{name}: {}", put.1);
        wait_for_idle(&node, kept).await;
        assert_eq!(node.call(&path).await, (200, "hello, body".to_string()));
        wait_for_idle(&node, kept).await;
        assert_eq!(node.call(&format!("/{name}/no-such-route")).await.0, 404);
        wait_for_idle(&node, kept).await;
        // The same instance served every request in between (they do not count).
        assert_eq!(count(&node, name).await, "4", "{name}");
    }
}

/// Waits until the node has `idle` instances kept for reuse (`glint_instances_idle`):
/// a kept instance goes back to its pool just after its response has gone out.
async fn wait_for_idle(node: &Node, idle: usize) {
    wait_until(
        &format!("{idle} instance(s) kept idle"),
        Duration::from_secs(10),
        || async {
            let seen = node
                .metrics()
                .await
                .into_iter()
                .find(|(name, _, _)| name == "glint_instances_idle")
                .map(|(_, _, n)| n as usize);
            if seen == Some(idle) {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await;
}

/// A JS component that answers through StarlingMonkey's built-in fetch event hangs on a
/// second request in one instance, so asking it for reuse is refused at deploy. The
/// component here is the Rust hello carrying the runtime's marker, as such a one does.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_that_cannot_be_reused_is_refused_reuse_with_the_reason() {
    let node = Node::start();
    let admin = node.admin();
    let mut component = guest("hello");
    component.extend(custom_section(
        "glint-test",
        b"StarlingMonkey engine initializing",
    ));
    let (status, body) = admin.deploy("js-like", REUSE, component.clone()).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("scaling.reuse"), "{body}");
    assert!(message.contains("glint build"), "{body}");
    // Nothing was stored; without reuse the same bytes deploy and serve.
    assert_eq!(admin.get("/api/v1/functions/js-like").await.0, 404);
    admin.deploy_ok("js-like", "", component).await;
    assert_eq!(node.call("/js-like").await.0, 200);
}

/// Whether each version of `function` has its compiled code in memory.
async fn loaded(node: &Node, function: &str) -> bool {
    let (status, body) = node
        .admin()
        .get(&format!("/api/v1/functions/{function}/status"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["versions"][0]["loaded"]
        .as_bool()
        .unwrap_or_else(|| panic!("no loaded flag: {body}"))
}

/// Polls `check` every 100 ms for up to 20 s; true once it holds.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_code_leaves_memory_and_comes_back_from_the_cache_unless_pinned() {
    let node = Node::start_with_args(&["--evict-idle-after", "2s"]);
    let admin = node.admin();
    let hello = guest("hello");
    admin.deploy_ok("idle", "", hello.clone()).await;
    admin
        .deploy_ok("pinned", "[scaling]\nmin_instances = 1\n", hello)
        .await;
    for f in ["idle", "pinned"] {
        assert_eq!(node.call(&format!("/{f}")).await.0, 200);
        assert!(loaded(&node, f).await, "{f} is loaded after its deploy");
    }

    assert!(
        eventually(|| async { !loaded(&node, "idle").await }).await,
        "an idle version was never evicted"
    );
    assert!(
        loaded(&node, "pinned").await,
        "a pinned version was evicted"
    );
    assert!(node_stat(&node, "evictions").await >= 1);

    // The next request maps the code back in from the compile cache: no compile.
    let compiles = node_stat(&node, "compiles").await;
    let cache_loads = node_stat(&node, "cache_loads").await;
    let (status, body) = node.call("/idle").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello"), "{body}");
    assert!(loaded(&node, "idle").await);
    assert_eq!(node_stat(&node, "compiles").await, compiles);
    assert_eq!(node_stat(&node, "cache_loads").await, cache_loads + 1);
    let metrics = node.admin().request(reqwest::Method::GET, "/metrics");
    let text = metrics.send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("glint_cold_starts_total")
                && l.contains("function=\"idle\"")
                && l.contains("source=\"cache\"")),
        "no cache cold start counted for idle:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_max_loaded_versions_stay_in_memory_also_across_a_restart() {
    let mut node = Node::start_with_args(&["--max-loaded-versions", "3"]);
    let admin = node.admin();
    let hello = guest("hello");
    admin
        .deploy_ok("pinned", "[scaling]\nmin_instances = 1\n", hello.clone())
        .await;
    let names = ["f1", "f2", "f3", "f4", "f5"];
    for f in names {
        admin.deploy_ok(f, "", hello.clone()).await;
    }
    assert!(
        eventually(|| async { node_stat(&node, "loaded_versions").await <= 3 }).await,
        "more than 3 versions stayed loaded"
    );
    assert!(
        loaded(&node, "pinned").await,
        "the pinned version was evicted"
    );
    // The most recently used stay; the oldest went first.
    assert!(loaded(&node, "f5").await);
    assert!(!loaded(&node, "f1").await);
    for f in names {
        assert_eq!(node.call(&format!("/{f}")).await.0, 200, "{f}");
    }

    // A restart loads no more than the cap up front, compiles nothing, and serves all.
    assert!(node.stop());
    node.restart();
    assert!(node_stat(&node, "loaded_versions").await <= 3);
    for f in names.iter().chain(&["pinned"]) {
        assert_eq!(node.call(&format!("/{f}")).await.0, 200, "{f}");
    }
    assert_eq!(node_stat(&node, "compiles").await, 0);
}
