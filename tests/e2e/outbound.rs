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
