//! Guests that misbehave end only their own request, with a 5xx and a log line, while
//! the node goes on serving other functions, including at the same time.

use std::time::Duration;

use glint_e2e::{Node, guest, wait_until};
use serde_json::Value;

const LIMITS: &str = "[limits]\ncpu_ms = 300\nmemory_mb = 32\ntimeout_ms = 1500\n";

#[tokio::test(flavor = "multi_thread")]
async fn each_misbehaviour_ends_only_its_request() {
    let node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;
    let (status, body) = admin.deploy("misbehave", LIMITS, guest("misbehave")).await;
    assert_eq!(status, 201, "{body}");

    let cases = [
        (
            "/misbehave/loop",
            504,
            "cpu_limit_exceeded",
            "CPU time limit of 300 ms",
        ),
        (
            "/misbehave/alloc",
            500,
            "memory_limit_exceeded",
            "memory limit of 32 MiB",
        ),
        ("/misbehave/trap", 500, "function_trapped", "trapped"),
        (
            "/misbehave/noresponse",
            502,
            "no_response",
            "without setting a response",
        ),
        (
            "/misbehave/sleep?ms=5000",
            504,
            "function_timeout",
            "timeout of 1500 ms",
        ),
    ];
    for (path, status, code, log_hint) in cases {
        let resp = node.get(path).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let id = resp.headers()["x-glint-execution-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");

        let has_hint = |lines: &[Value]| {
            lines.iter().any(|l| {
                l["stream"] == "host"
                    && l["level"] == "error"
                    && l["message"].as_str().unwrap_or("").contains(log_hint)
            })
        };
        let lines = admin.wait_for_logs("misbehave", &id, has_hint).await;
        assert!(
            has_hint(&lines),
            "{path}: no host log line mentioning {log_hint:?} in {lines:?}"
        );

        // The same node, and the same function, still serve.
        assert_eq!(
            node.call("/hello").await,
            (200, "Hello from Glint!\n".to_string()),
            "after {path}"
        );
        assert_eq!(
            node.call("/misbehave/ok").await,
            (200, "ok\n".to_string()),
            "after {path}"
        );
    }

    // The panic's own message reaches the log from stderr, as an error.
    let resp = node.get("/misbehave/trap").await;
    let id = resp.headers()["x-glint-execution-id"]
        .to_str()
        .unwrap()
        .to_string();
    let panicked = |lines: &[Value]| {
        lines.iter().any(|l| {
            l["stream"] == "stderr"
                && l["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("deliberate panic")
        })
    };
    assert!(panicked(
        &admin.wait_for_logs("misbehave", &id, panicked).await
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn looping_guests_do_not_starve_others() {
    loops_leave_room_for_hello(&Node::start()).await;
}

/// On a data-plane thread, each looping guest yields at every tick, and the thread still
/// reads its other connections between them (it once did so only every 61 polls, 0.6 s
/// with guests looping, and the hello calls outlasted the loops).
#[tokio::test(flavor = "multi_thread")]
async fn looping_guests_do_not_starve_others_on_data_plane_threads() {
    loops_leave_room_for_hello(&Node::start_with_args(&["--data-plane-threads", "2"])).await;
}

/// Hello answers ten times while four guests spin, before they are stopped.
async fn loops_leave_room_for_hello(node: &Node) {
    let admin = node.admin();
    admin.deploy_hello("Hello").await;
    let manifest = "[limits]\ncpu_ms = 3000\ntimeout_ms = 5000\n";
    admin
        .deploy_ok("misbehave", manifest, guest("misbehave"))
        .await;

    // More spinning guests than the machine has cores, all at once.
    let url = format!("{}/misbehave/loop", node.data_url);
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                glint_e2e::http_client()
                    .get(url)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Once all four run in guests (the node's in-flight gauge for the function).
    wait_until("four loops running", Duration::from_secs(10), || async {
        let running = node
            .metrics()
            .await
            .into_iter()
            .find(|(name, labels, _)| {
                name == "glint_requests_in_flight" && labels["function"] == "misbehave"
            })
            .map(|(_, _, n)| n);
        if running == Some(4.0) {
            Ok(())
        } else {
            Err(format!("{running:?}"))
        }
    })
    .await;
    // While they spin, hello answers, and before the spinners are stopped.
    for _ in 0..10 {
        assert_eq!(
            node.call("/hello").await,
            (200, "Hello from Glint!\n".to_string())
        );
    }
    let still_spinning = loops.iter().filter(|h| !h.is_finished()).count();
    assert!(
        still_spinning > 0,
        "the loops ended before hello was served; the test proves nothing"
    );
    for handle in loops {
        assert_eq!(handle.await.unwrap(), 504);
    }
}
