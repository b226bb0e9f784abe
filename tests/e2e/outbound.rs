//! Outbound HTTP against the manifest's `[outbound]` allow-list, with an upstream server
//! the test starts on loopback and allows explicitly.

use std::sync::atomic::Ordering;

use glint_e2e::{Node, guest, upstream};

fn query_url(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_allow_list_decides_every_call() {
    let (port, hits) = upstream();
    let (other_port, other_hits) = upstream();
    let node = Node::start();
    let admin = node.admin();
    let allowed = format!("http://127.0.0.1:{port}");
    let manifest = format!(
        "[outbound]\nallowed_hosts = [\"{allowed}\", \"http://*\", \"https://*.example.com\"]\nallowed_methods = [\"GET\"]\nmax_requests = 2\n"
    );
    admin
        .deploy_ok("fetcher", &manifest, guest("fetcher"))
        .await;
    admin.deploy_ok("closed", "", guest("fetcher")).await;

    let call = |function: &str, url: &str, extra: &str| {
        let path = format!("/{function}/?url={}{extra}", query_url(url));
        let node = &node;
        async move { node.call(&path).await }
    };

    // Allowed: an exact entry names the loopback upstream.
    let (status, body) = call("fetcher", &format!("{allowed}/x"), "").await;
    assert_eq!((status, body.as_str()), (200, "200 upstream says hi\n"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Loopback on another port: the `http://*` wildcard does not open internal addresses.
    let (_, body) = call("fetcher", &format!("http://127.0.0.1:{other_port}/"), "").await;
    assert_eq!(body, "error ErrorCode::HttpRequestDenied\n");
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "a denied request reached the upstream"
    );

    // A private address and localhost by name: denied the same way.
    for url in [
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://localhost:1/",
        "http://[::1]:1/",
    ] {
        let (_, body) = call("fetcher", url, "").await;
        assert_eq!(body, "error ErrorCode::HttpRequestDenied\n", "{url}");
    }

    // A method that is not allowed.
    let (_, body) = call("fetcher", &format!("{allowed}/"), "&method=POST").await;
    assert_eq!(body, "error ErrorCode::HttpRequestDenied\n");

    // At most two requests per invocation.
    let (_, body) = call("fetcher", &format!("{allowed}/"), "&times=3").await;
    assert_eq!(
        body,
        "200 upstream says hi\n200 upstream says hi\nerror ErrorCode::HttpRequestDenied\n"
    );

    // A function with no [outbound] reaches nothing.
    let (_, body) = call("closed", &format!("{allowed}/"), "").await;
    assert_eq!(body, "error ErrorCode::HttpRequestDenied\n");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Each denial left a log line saying which rule to add (lines are stored in batches).
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = admin.logs("fetcher", "lines=100").await;
        if lines
            .iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains("max_requests"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let text: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        text.iter()
            .any(|m| m.contains(&format!("127.0.0.1:{other_port} is an internal address"))),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("POST is not in [outbound] allowed_methods")),
        "{text:?}"
    );
    assert!(text.iter().any(|m| m.contains("max_requests")), "{text:?}");
    let closed = admin.logs("closed", "lines=100").await;
    assert!(
        closed.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or("")
            .contains("no [outbound] allowed_hosts")),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_outbound_rules_are_refused_at_deploy() {
    let node = Node::start();
    let admin = node.admin();
    for (manifest, key) in [
        (
            "[outbound]\nallowed_hosts = [\"example.com\"]\n",
            "outbound.allowed_hosts[0]",
        ),
        (
            "[outbound]\nallowed_hosts = [\"https://a.*.com\"]\n",
            "outbound.allowed_hosts[0]",
        ),
        (
            "[outbound]\nallowed_hosts = [\"https://ok.com\", \"https://x.com/path\"]\n",
            "outbound.allowed_hosts[1]",
        ),
        (
            "[outbound]\nallowed_methods = [\"G E T\"]\n",
            "outbound.allowed_methods[0]",
        ),
        ("[outbound]\nmax_requests = 0\n", "outbound.max_requests"),
        ("[outbound]\nallowd_hosts = []\n", "allowd_hosts"),
    ] {
        let (status, body) = admin.deploy("fetcher", manifest, guest("fetcher")).await;
        assert_eq!(status, 400, "{manifest}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(key),
            "{manifest}: {body}"
        );
    }
}

/// DNS rebinding: a name that resolves to a public address when checked and to loopback
/// a moment later. The guard resolves once and dials the address it checked, so the
/// guest never reaches the loopback listener; the second lookup, now internal, is denied.
#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_rebinds_to_loopback_never_reaches_it() {
    let (port, hits) = upstream();
    let public = "203.0.113.7".parse().unwrap(); // TEST-NET-3: public, unreachable here
    let (dns, asked) =
        glint_e2e::dns_server("rebind.test", vec![public, "127.0.0.1".parse().unwrap()]);
    let dns = dns.to_string();
    let node = Node::start_with_args(&["--dns-server", &dns]);
    let manifest =
        format!("[outbound]\nallowed_hosts = [\"http://*.test:{port}\"]\ntimeout_ms = 1000\n");
    node.admin()
        .deploy_ok("fetcher", &manifest, guest("fetcher"))
        .await;
    let url = format!("http://rebind.test:{port}/");
    let resp = node
        .get(&format!("/fetcher/?times=2&url={}", query_url(&url)))
        .await;
    let execution = resp.headers()["x-glint-execution-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (status, body) = (resp.status().as_u16(), resp.text().await.unwrap());
    assert_eq!(status, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    // The first call went to the public address it was checked with (and found nothing
    // there); the second lookup said 127.0.0.1, which a wildcard never opens.
    assert!(lines[0].starts_with("error "), "{body}");
    assert_ne!(lines[0], "error ErrorCode::HttpRequestDenied", "{body}");
    assert_eq!(lines[1], "error ErrorCode::HttpRequestDenied", "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the guest reached loopback");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "each outbound request resolves its name once"
    );
    let says_internal = |lines: &[serde_json::Value]| {
        lines.iter().any(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("resolves to an internal address")
        })
    };
    let logs = node
        .admin()
        .wait_for_logs("fetcher", &execution, says_internal)
        .await;
    assert!(says_internal(&logs), "{logs:?}");
}
