//! WASI 0.3 HTTP components (`wasi:http/service`, exporting `wasi:http/handler@0.3.0`)
//! beside WASI 0.2 ones: the tests/fixtures/p3 guest, built from source with wasip3, is
//! deployed and called on a real node, and gets the same capabilities and limits.

use glint_e2e::{Node, guest, upstream};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_03_component_serves_with_capabilities_and_limits() {
    let (port, hits) = upstream();
    let node = Node::start();
    let admin = node.admin();
    let manifest = format!(
        "[env]\nGREETING = \"hi from 0.3\"\n[kv]\nstores = [\"data\"]\n\
         [outbound]\nallowed_hosts = [\"http://127.0.0.1:{port}\"]\n\
         [limits]\ncpu_ms = 300\nmemory_mb = 32\ntimeout_ms = 3000\n"
    );
    admin.deploy_ok("p3", &manifest, guest("p3")).await;
    // And a WASI 0.2 function on the same node, which keeps serving beside it.
    admin.deploy_hello("still 0.2").await;

    assert_eq!(
        node.call("/p3/hello").await,
        (200, "hello from WASI 0.3\n".into())
    );
    // The request body reaches the guest; the response streams back.
    assert_eq!(
        node.send(Method::POST, "/p3/echo", b"ping pong".to_vec())
            .await,
        (200, "9 bytes: ping pong".into())
    );
    let (status, body) = node.call("/p3/stream?chunks=50").await;
    assert_eq!(status, 200);
    let want: String = (0..50).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(
        body, want,
        "every chunk, written after the response was returned"
    );

    // KV, config (the environment) and env vars.
    assert_eq!(node.call("/p3/kv/data/k").await, (404, "not found".into()));
    assert_eq!(
        node.send(Method::PUT, "/p3/kv/data/k", b"v1".to_vec())
            .await
            .0,
        204
    );
    assert_eq!(node.call("/p3/kv/data/k").await, (200, "v1".into()));
    for want in ["1\n", "2\n"] {
        assert_eq!(
            node.send(Method::POST, "/p3/kv/data/n/increment", Vec::new())
                .await,
            (200, want.into())
        );
    }
    let (status, body) = node.call("/p3/kv/other/k").await;
    assert_eq!(status, 500, "a store the manifest does not list: {body}");
    assert!(body.contains("AccessDenied"), "{body}");
    assert_eq!(
        node.call("/p3/config/GREETING").await,
        (200, "hi from 0.3".into())
    );
    assert_eq!(
        node.call("/p3/env/GREETING").await,
        (200, "hi from 0.3".into())
    );

    // Outbound: the allowed upstream is called, another host is denied before any
    // connection.
    let allowed = format!("/p3/fetch?url=http%3A%2F%2F127.0.0.1:{port}%2F");
    assert_eq!(node.call(&allowed).await, (200, "status 200".into()));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (other, _) = upstream();
    let denied = format!("/p3/fetch?url=http%3A%2F%2F127.0.0.1:{other}%2F");
    let (status, body) = node.call(&denied).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    // Limits: a loop ends at the CPU limit, an allocation past memory_mb at the memory
    // limit; each ends only its own request.
    let (status, body) = node.call("/p3/loop").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("cpu_limit_exceeded"), "{body}");
    assert_eq!(
        node.call("/p3/alloc?mb=4").await,
        (200, "allocated 4 MiB\n".into())
    );
    let (status, body) = node.call("/p3/alloc?mb=64").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("memory_limit_exceeded"), "{body}");
    assert_eq!(
        node.call("/hello").await,
        (200, "still 0.2 from Glint!\n".into())
    );
    assert_eq!(
        node.call("/p3/hello").await,
        (200, "hello from WASI 0.3\n".into())
    );

    // Reuse is for WASI 0.2 for now: asked of a 0.3 component, the deploy says so.
    let (status, body) = admin
        .deploy("p3-reused", "[scaling]\nreuse = true\n", guest("p3"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "not_reusable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WASI 0.3"),
        "{body}"
    );
}
