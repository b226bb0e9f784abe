//! Deploy → call → new version → weighted alias split → rollback → env → delete, on a
//! real node, plus a restart that serves everything without compiling again.

use glint_e2e::{Node, guest, hello_manifest};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn deploy_call_split_rollback_delete() {
    let node = Node::start();
    let admin = node.admin();
    let hello = guest("hello");

    let (status, body) = admin
        .deploy("hello", &hello_manifest("Hello"), hello.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "v1");

    let resp = node.get("/hello").await;
    assert_eq!(resp.status(), 200);
    let execution_id = resp.headers()["x-glint-execution-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(resp.text().await.unwrap(), "Hello from Glint!\n");

    // The guest sees the path beneath its route, and the route in x-forwarded-prefix.
    let (status, text) = node.call("/hello/a/b?x=1").await;
    assert_eq!(
        (status, text.as_str()),
        (200, "path=/a/b?x=1 prefix=/hello\n")
    );

    // Its stdout line is stored with the response's execution id.
    let lines = admin
        .wait_for_logs("hello", &execution_id, |l| !l.is_empty())
        .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["message"], "hello: GET /");
    assert_eq!(lines[0]["level"], "info");
    assert_eq!(lines[0]["version"], 1);

    // A new version moves `latest`.
    let (status, body) = admin
        .deploy("hello", &hello_manifest("Howdy"), hello.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "v2");
    assert_eq!(
        node.call("/hello").await,
        (200, "Howdy from Glint!\n".to_string())
    );

    // The PhotonIQ-style endpoint reaches a version by number or alias.
    let http = glint_e2e::http_client();
    let execute = |sel: &str| {
        let url = format!("{}/api/faas/v1/execute/hello{sel}", node.data_url);
        let http = http.clone();
        async move { http.post(url).send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(execute("/v1").await, "Hello from Glint!\n");
    assert_eq!(execute("/latest").await, "Howdy from Glint!\n");
    assert_eq!(execute("").await, "Howdy from Glint!\n");

    // A canary split: the counts over many calls follow the weights.
    let (status, body) = admin
        .put(
            "/api/v1/functions/hello/aliases/latest",
            json!({ "versions": { "v1": 0.8, "v2": 0.2 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let calls = 500;
    let mut v2 = 0;
    for _ in 0..calls {
        let (status, text) = node.call("/hello").await;
        assert_eq!(status, 200);
        match text.as_str() {
            "Howdy from Glint!\n" => v2 += 1,
            "Hello from Glint!\n" => {}
            other => panic!("unexpected body {other:?}"),
        }
    }
    // 20% of 500 is 100, with a standard deviation near 9: allow about 4 of them.
    assert!(
        (65..=135).contains(&v2),
        "v2 served {v2} of {calls} calls; expected about 100"
    );

    // Rollback: the alias points at v1 alone again.
    let (status, _) = admin
        .put(
            "/api/v1/functions/hello/aliases/latest",
            json!({ "versions": { "v1": 1 } }),
        )
        .await;
    assert_eq!(status, 200);
    for _ in 0..20 {
        assert_eq!(
            node.call("/hello").await,
            (200, "Hello from Glint!\n".to_string())
        );
    }

    // Info lists versions, aliases and env names; the wasm downloads byte for byte.
    let (status, info) = admin.get("/api/v1/functions/hello").await;
    assert_eq!(status, 200);
    assert_eq!(info["route"], "/hello");
    assert_eq!(info["versions"].as_array().unwrap().len(), 2);
    assert_eq!(info["aliases"][0]["name"], "latest");
    assert_eq!(info["env"], json!(["GREETING"]));
    assert_eq!(info["limits"]["memory_mb"], 128);
    let wasm = admin
        .request(
            reqwest::Method::GET,
            "/api/v1/functions/hello/versions/v2/wasm",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.bytes().await.unwrap().to_vec(), hello);

    // Env set through the API wins over the manifest, and unset restores it.
    let (status, _) = admin
        .put(
            "/api/v1/functions/hello/env/GREETING",
            json!({ "value": "Hi" }),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        node.call("/hello").await,
        (200, "Hi from Glint!\n".to_string())
    );
    let (status, _) = admin.delete("/api/v1/functions/hello/env/GREETING").await;
    assert_eq!(status, 204);
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );

    // A version an alias points to cannot be deleted; another can.
    let (status, body) = admin.delete("/api/v1/functions/hello/versions/v1").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alias 'latest'")
    );
    let (status, _) = admin.delete("/api/v1/functions/hello/versions/v2").await;
    assert_eq!(status, 204);
    let (status, body) = admin.get("/api/v1/functions/hello/versions/v2").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "function 'hello' has no version 'v2'; versions: v1"
    );

    // Delete the function: its route is gone.
    let (status, _) = admin.delete("/api/v1/functions/hello").await;
    assert_eq!(status, 204);
    let (status, body) = node.call("/hello").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = admin.get("/api/v1/functions/hello").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "function_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_serves_without_compiling() {
    let mut node = Node::start();
    let admin = node.admin();
    let (status, body) = admin
        .deploy("hello", &hello_manifest("Hello"), guest("hello"))
        .await;
    assert_eq!(status, 201, "{body}");
    let manifest = "[limits]\ncpu_ms = 500\n";
    let (status, body) = admin
        .deploy("misbehave", manifest, guest("misbehave"))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, status_before) = admin.get("/api/v1/node").await;
    assert_eq!(status_before["compiles"], 2, "{status_before}");

    assert!(
        node.stop(),
        "the node did not exit cleanly on SIGTERM:\n{}",
        node.log()
    );
    node.restart();
    let admin = node.admin();
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
    assert_eq!(node.call("/misbehave/ok").await, (200, "ok\n".to_string()));
    let (_, after) = admin.get("/api/v1/node").await;
    assert_eq!(
        after["compiles"], 0,
        "a restarted node compiled again: {after}"
    );
    assert_eq!(after["cache_loads"], 2, "{after}");

    // Deleting the compile cache is survivable: the node compiles from the stored bytes.
    assert!(node.stop());
    std::fs::remove_dir_all(node.data_dir.join("compiled")).unwrap();
    node.restart();
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
    let (_, after) = node.admin().get("/api/v1/node").await;
    assert_eq!(after["compiles"], 2, "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut node = Node::start();
    let admin = node.admin();
    let (status, body) = admin.deploy("misbehave", "", guest("misbehave")).await;
    assert_eq!(status, 201, "{body}");
    let url = format!("{}/misbehave/sleep?ms=1500", node.data_url);
    let in_flight = tokio::spawn(async move {
        let resp = glint_e2e::http_client().get(url).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let stopped = tokio::task::spawn_blocking(move || {
        let ok = node.stop();
        (ok, node)
    });
    let (status, text) = in_flight.await.unwrap();
    assert_eq!((status, text.as_str()), (200, "slept 1500 ms\n"));
    let (ok, node) = stopped.await.unwrap();
    assert!(ok, "the node did not exit cleanly:\n{}", node.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_without_moving_the_alias_and_http2() {
    let node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;
    let form = reqwest::multipart::Form::new()
        .text("manifest", hello_manifest("Staged"))
        .part("component", reqwest::multipart::Part::bytes(guest("hello")));
    let req = admin
        .request(
            reqwest::Method::POST,
            "/api/v1/functions/hello/versions?no_alias=true",
        )
        .multipart(form);
    let (status, body) = admin.send(req).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "v2");
    // `latest` still serves v1; v2 is reachable by number.
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
    let staged = glint_e2e::http_client()
        .post(format!("{}/api/faas/v1/execute/hello/v2", node.data_url))
        .send()
        .await
        .unwrap();
    assert_eq!(staged.text().await.unwrap(), "Staged from Glint!\n");

    // The data plane speaks HTTP/2 too (cleartext, prior knowledge).
    let h2 = glint_e2e::h2_client();
    let resp = h2
        .get(format!("{}/hello", node.data_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.text().await.unwrap(), "Hello from Glint!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_above_the_concurrency_limit_get_503_after_queueing() {
    let node = Node::start();
    let admin = node.admin();
    let manifest = "[scaling]\nmax_concurrency = 1\nmax_queue_ms = 200\n";
    admin
        .deploy_ok("misbehave", manifest, guest("misbehave"))
        .await;
    let url = format!("{}/misbehave/sleep?ms=2000", node.data_url);
    let busy = tokio::spawn(async move {
        glint_e2e::http_client()
            .get(url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let resp = node.get("/misbehave/ok").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "at_capacity");
    assert!(
        !busy.is_finished(),
        "the first request ended early; the 503 proves nothing"
    );
    assert_eq!(busy.await.unwrap(), 200);
    // The slot is free again.
    assert_eq!(node.call("/misbehave/ok").await, (200, "ok\n".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_logs_json_when_asked() {
    let node = Node::start_with_args(&["--log-format", "json"]);
    node.admin().deploy_hello("Hello").await;
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the node logged nothing");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"deployed\"")),
        "no deploy line in:\n{log}"
    );
}
