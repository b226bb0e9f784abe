//! Observability end to end: `/metrics` scraped with a Prometheus parser, usage metering
//! checked against the requests sent, log filters, live follow (SSE and `glint logs -f`),
//! and log retention.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use glint_e2e::{Node, glint_bin, guest, hello_manifest};
use reqwest::Method;
use serde_json::Value;

/// Polls `check` every 100 ms for up to `secs` seconds; returns its last answer.
async fn eventually<T>(secs: u64, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sample(
    samples: &[(String, HashMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_usage_match_the_requests_sent() {
    let node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hi").await;
    admin
        .deploy_ok("caps", "[kv]\nstores = [\"data\"]\n", guest("caps"))
        .await;
    admin
        .deploy_ok("spin", "[limits]\ncpu_ms = 50\n", guest("misbehave"))
        .await;

    let n = 25;
    let body = "Hi from Glint!\n";
    for _ in 0..n {
        assert_eq!(node.call("/hello").await, (200, body.to_string()));
    }
    let echo = vec![b'x'; 1000];
    for _ in 0..3 {
        assert_eq!(
            node.send(Method::POST, "/hello/echo", echo.clone()).await.0,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(node.call("/spin/loop").await.0, 504);
    }
    assert_eq!(
        node.send(Method::PUT, "/caps/kv/data/k", b"v".to_vec())
            .await
            .0,
        204
    );
    assert_eq!(node.call("/caps/kv/other/k").await.0, 500);
    // A function with no [outbound] section: its one call out is denied.
    admin.deploy_ok("closed", "", guest("fetcher")).await;
    let (_, denied) = node
        .call("/closed/?url=http%3A%2F%2F127.0.0.1%3A9%2F")
        .await;
    assert!(denied.contains("Denied"), "{denied}");

    // A guest's usage (CPU, KV and outbound calls) is counted when it returns, which can
    // be a moment after its response has reached the client: scrape once none runs.
    let samples = eventually(15, async || {
        let samples = node.metrics().await;
        (sample(&samples, "glint_requests_in_flight", &[]) == 0.0).then_some(samples)
    })
    .await
    .expect("every guest returns");
    let hello = [("function", "hello")];
    assert_eq!(
        sample(
            &samples,
            "glint_requests_total",
            &[("function", "hello"), ("status", "2xx")]
        ),
        28.0
    );
    assert_eq!(
        sample(
            &samples,
            "glint_requests_total",
            &[("function", "spin"), ("status", "5xx")]
        ),
        2.0
    );
    assert_eq!(
        sample(&samples, "glint_request_duration_seconds_count", &hello),
        28.0
    );
    assert!(sample(&samples, "glint_cold_starts_total", &hello) >= 1.0);
    assert!(
        sample(
            &samples,
            "glint_guest_cpu_seconds_total",
            &[("function", "spin")]
        ) > 0.04
    );
    assert!(sample(&samples, "glint_guest_memory_peak_bytes", &hello) > 0.0);
    assert_eq!(
        sample(
            &samples,
            "glint_kv_operations_total",
            &[("function", "caps"), ("result", "ok")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &samples,
            "glint_kv_operations_total",
            &[("function", "caps"), ("result", "denied")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "glint_outbound_requests_total",
            &[("function", "closed"), ("result", "denied")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "glint_outbound_requests_total",
            &[("function", "closed"), ("result", "allowed")]
        ),
        0.0
    );
    assert!(sample(&samples, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(sample(&samples, "glint_compiles_total", &[]) >= 4.0);
    // Bounded labels: nothing like an execution id or a path.
    for (name, labels, _) in &samples {
        for (k, v) in labels {
            assert!(
                !["path", "execution_id", "url"].contains(&k.as_str()),
                "{name} {k}={v}"
            );
            assert!(v.len() < 64, "{name} {k}={v}");
        }
    }

    // Usage, once flushed, counts the same requests, their bytes and their time.
    let usage = eventually(15, async || {
        let (_, u) = admin
            .get("/api/v1/usage?function=hello&period=minute")
            .await;
        (u["totals"]["requests"] == 28).then_some(u)
    })
    .await
    .expect("usage reaches the store");
    let totals = &usage["totals"];
    assert_eq!(totals["errors"], 0);
    assert_eq!(totals["bytes_in"], 3000);
    assert_eq!(totals["bytes_out"], n * body.len() as u64 + 3000);
    assert!(totals["gb_seconds"].as_f64().unwrap() > 0.0, "{totals}");
    assert!(
        totals["requests_per_second"].as_f64().unwrap() > 0.0,
        "{totals}"
    );
    let spin = eventually(15, async || {
        let (_, u) = admin.get("/api/v1/usage?function=spin&period=hour").await;
        (u["totals"]["errors"] == 2).then_some(u)
    })
    .await
    .expect("errors are metered");
    assert!(spin["totals"]["cpu_ms"].as_f64().unwrap() >= 40.0, "{spin}");
    let (status, body) = admin
        .get("/api/v1/usage?function=hello&period=fortnight")
        .await;
    assert_eq!(status, 400, "{body}");

    // The recent statistics the dashboard shows.
    let (_, stats) = admin.get("/api/v1/stats?window=300").await;
    let hello_stats = stats["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "hello")
        .unwrap()
        .clone();
    assert_eq!(hello_stats["requests"], 28, "{stats}");
    assert!(hello_stats["p99_ms"].as_f64().unwrap() >= hello_stats["p50_ms"].as_f64().unwrap());

    // And the CLI prints the same count.
    let out = Command::new(glint_bin())
        .args(["metrics", "hello", "--period", "hour"])
        .env("GLINT_API_URL", &node.admin_url)
        .env("GLINT_API_KEY", &node.key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let total = text
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or_default();
    assert_eq!(total.split_whitespace().nth(1), Some("28"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_filters_and_live_follow() {
    let node = Node::start_with_args(&["--node-id", "edge-1", "--region", "eu-west"]);
    let admin = node.admin();
    admin.deploy_hello("Hi").await;
    admin
        .deploy_ok("hello", &hello_manifest("Again"), guest("hello"))
        .await;
    let resp = node.get("/hello/first").await;
    let first_id = resp.headers()["x-glint-execution-id"]
        .to_str()
        .unwrap()
        .to_string();
    // Clear of the first line's millisecond, and of the next ones'.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = glint_store_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..5 {
        node.call(&format!("/hello/n{i}")).await;
    }
    let lines = admin
        .wait_for_logs("hello", &first_id, |l| !l.is_empty())
        .await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["node"], "edge-1");
    assert_eq!(lines[0]["region"], "eu-west");

    let count = async |query: &str| {
        let (status, body) = admin.get(&format!("/api/v1/logs?{query}")).await;
        assert_eq!(status, 200, "{body}");
        body["lines"].as_array().unwrap().len()
    };
    eventually(10, async || {
        (count("function=hello").await == 6).then_some(())
    })
    .await
    .expect("all six lines stored");
    assert_eq!(count("function=hello&version=v2").await, 6);
    assert_eq!(count("function=hello&version=v1").await, 0);
    assert_eq!(count("function=hello&region=eu-west&node=edge-1").await, 6);
    assert_eq!(count("function=hello&region=us-east").await, 0);
    assert_eq!(count(&format!("function=hello&start={started}")).await, 5);
    assert_eq!(count(&format!("function=hello&end={started}")).await, 1);
    assert_eq!(count("function=hello&start=1h&lines=2").await, 2);
    assert_eq!(count("function=hello&level=error").await, 0);
    // Oldest first, or the newest (the default), each in time order.
    let (_, asc) = admin
        .get("/api/v1/logs?function=hello&lines=1&asc=true")
        .await;
    assert!(
        asc["lines"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("/first"),
        "{asc}"
    );
    let (_, desc) = admin.get("/api/v1/logs?function=hello&lines=1").await;
    assert!(
        desc["lines"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("/n4"),
        "{desc}"
    );
    // No range means the last hour: a line from two hours ago would not show.
    assert_eq!(count("function=hello&end=2h").await, 0);

    // Live follow over SSE: a line printed now arrives at once.
    let stream = admin
        .request(Method::GET, "/api/v1/logs/stream?function=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let resp = node.get("/hello/live").await;
    let live_id = resp.headers()["x-glint-execution-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut stream = stream.bytes_stream();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(&live_id) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
    assert!(seen.contains("hello: GET /live"), "{seen}");

    // `glint logs -f` prints a line printed after it started.
    let mut child = Command::new(glint_bin())
        .args(["logs", "hello", "-f"])
        .env("GLINT_API_URL", &node.admin_url)
        .env("GLINT_API_KEY", &node.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The history comes first; then a new request, until its line shows (bounded).
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while Instant::now() < deadline && !printed.iter().any(|l: &String| l.contains("/follow-me")) {
        if sent < 10 {
            node.call("/hello/follow-me").await;
            sent += 1;
        }
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            printed.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        printed.iter().any(|l| l.contains("/follow-me")),
        "{printed:?}"
    );
    assert!(
        printed.iter().any(|l| l.contains("/n4")),
        "history first: {printed:?}"
    );
}

fn glint_store_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn old_and_excess_log_lines_are_pruned() {
    let node = Node::start_with_args(&[
        "--log-max-age",
        "6s",
        "--log-max-mb",
        "1",
        "--log-prune-every",
        "1s",
    ]);
    let admin = node.admin();
    admin.deploy_ok("caps", "", guest("caps")).await;
    // 4 KB a line, 400 lines: 1.6 MB, over the 1 MB allowed.
    let (status, _) = admin
        .put(
            "/api/v1/functions/caps/env/LONG",
            serde_json::json!({ "value": "y".repeat(4000) }),
        )
        .await;
    assert_eq!(status, 204);
    let mut last_id = String::new();
    for _ in 0..400 {
        let resp = node.get("/caps/print/LONG").await;
        assert_eq!(resp.status(), 204);
        last_id = resp.headers()["x-glint-execution-id"]
            .to_str()
            .unwrap()
            .to_string();
    }
    // Every line is stored before the size is judged.
    let last = admin
        .wait_for_logs("caps", &last_id, |l| !l.is_empty())
        .await;
    assert_eq!(last.len(), 1);
    let lines = async || -> Vec<Value> { admin.logs("caps", "lines=10000&since=1h").await };
    let kept = eventually(10, async || {
        let l = lines().await;
        (!l.is_empty() && l.len() * 4000 <= 1024 * 1024).then_some(l)
    })
    .await
    .expect("lines over the size limit are pruned");
    // The oldest went first: the newest line is still there.
    assert_eq!(kept.last(), last.last());
    // ...and after the age limit, none are left.
    eventually(20, async || lines().await.is_empty().then_some(()))
        .await
        .expect("lines older than the age limit are pruned");
}
