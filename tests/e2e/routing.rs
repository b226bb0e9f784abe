//! Routing by tenant: with `--base-domain`, each tenant's functions answer on their own
//! host names, so two tenants can both have `hello` on `/hello`; without one, path
//! routes serve the tenant `default` alone.

use glint_e2e::{Admin, Node, guest, hello_manifest};
use serde_json::{Value, json};

const BASE: &str = "fn.test";

/// Deploys `hello` on `/hello` as `admin`, greeting `who`; returns the deploy's answer.
async fn hello(admin: &Admin, who: &str) -> Value {
    admin
        .deploy_ok("hello", &hello_manifest(who), guest("hello"))
        .await
}

fn port(node: &Node) -> &str {
    node.data_url.rsplit_once(':').unwrap().1
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_share_a_function_name_and_route_on_their_own_hosts() {
    let node = Node::start_with_args(&["--base-domain", BASE]);
    let (acme, acme_key) = node.tenant("acme").await;
    let (beta, _) = node.tenant("beta").await;
    // The same name and route in three tenants.
    hello(&node.admin(), "default").await;
    let deployed = hello(&acme, "acme").await;
    hello(&beta, "beta").await;

    let want = |who: &str| (200, format!("{who} from Glint!\n"));
    // A function's own host: the whole path is the function's.
    assert_eq!(
        node.call_host("hello.acme.fn.test", "/").await,
        want("acme")
    );
    assert_eq!(
        node.call_host(&format!("HELLO.Beta.fn.test:{}", port(&node)), "/")
            .await,
        want("beta")
    );
    // (hello echoes a path other than `/`, and the route prefix it was told: none.)
    assert_eq!(
        node.call_host("hello.acme.fn.test", "/any/path").await,
        (200, "path=/any/path prefix=\n".into())
    );
    assert_eq!(
        node.call_host("acme.fn.test", "/hello/x").await,
        (200, "path=/x prefix=/hello\n".into())
    );
    // A tenant's host: its routes.
    assert_eq!(node.call_host("acme.fn.test", "/hello").await, want("acme"));
    assert_eq!(node.call_host("beta.fn.test", "/hello").await, want("beta"));
    // Any other host: default's routes.
    assert_eq!(node.call("/hello").await, want("default"));
    assert_eq!(node.call_host("fn.test", "/hello").await, want("default"));
    // What is not there says so.
    let (status, body) = node.call_host("nope.acme.fn.test", "/").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("function_not_found")),
        "{body}"
    );
    let (status, _) = node.call_host("gamma.fn.test", "/hello").await;
    assert_eq!(status, 404);

    // The API gives each function its own URL, and `glint execute` reaches it through
    // the node without any DNS name.
    let url = format!("http://hello.acme.fn.test:{}", port(&node));
    assert_eq!(deployed["function_url"], url.as_str(), "{deployed}");
    let (_, info) = acme.get("/api/v1/functions/hello").await;
    assert_eq!(info["url"], url.as_str());
    let version_url = format!(
        "http://acme.fn.test:{}/api/faas/v1/execute/hello/v1",
        port(&node)
    );
    assert_eq!(info["versions"][0]["url"], version_url.as_str(), "{info}");
    let (ok, out, err) = node.cli(&acme_key, &["execute", "hello"]);
    assert!(ok, "{err}");
    assert_eq!(out, "acme from Glint!\n");
    let (ok, out, err) = node.cli(&acme_key, &["execute", "hello", "--version", "1"]);
    assert!(ok, "{err}");
    assert_eq!(out, "acme from Glint!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_base_domain_path_routes_serve_default_only() {
    let node = Node::start();
    let (acme, acme_key) = node.tenant("acme").await;
    hello(&node.admin(), "default").await;
    // The same route in another tenant: taken per tenant, not across the node.
    let deployed = hello(&acme, "acme").await;
    assert_eq!(
        node.call("/hello").await,
        (200, "default from Glint!\n".into())
    );
    assert_eq!(
        node.call_host("hello.acme.fn.test", "/hello").await,
        (200, "default from Glint!\n".into())
    );
    assert_eq!(deployed["function_url"], Value::Null, "{deployed}");
    let (ok, _, err) = node.cli(&acme_key, &["execute", "hello"]);
    assert!(!ok && err.contains("--base-domain"), "{err}");
    // Within a tenant a route stays its one function's.
    let (status, body) = acme
        .deploy("other", "route = \"/hello\"\n", guest("hello"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
}
