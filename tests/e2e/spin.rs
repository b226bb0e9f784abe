//! Spin applications deployed unchanged: tests/fixtures/spin-app (two components built
//! with spin-sdk 5 on WASI 0.2) and tests/fixtures/spin3-app (spin-sdk 7 on WASI 0.3, Spin
//! 3's async interfaces) go up with `glint deploy` from their folders, which builds them by
//! the commands in their spin.toml, and their KV store and variables work through Spin's
//! own interfaces.

use std::process::Command;

use glint_e2e::{Node, glint_bin, repo_root};
use reqwest::Method;

fn deploy_spin_app(node: &Node, audience: Option<&str>) -> (bool, String, String) {
    deploy_app(node, "tests/fixtures/spin-app", audience)
}

fn deploy_app(node: &Node, folder: &str, audience: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(glint_bin());
    cmd.args(["deploy", folder])
        .current_dir(repo_root())
        .env("GLINT_API_URL", &node.admin_url)
        .env("GLINT_API_KEY", &node.key)
        .env_remove("SPIN_VARIABLE_AUDIENCE");
    if let Some(a) = audience {
        cmd.env("SPIN_VARIABLE_AUDIENCE", a);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spin_app_deploys_from_its_spin_toml_and_runs() {
    let node = Node::start();
    let admin = node.admin();

    // A required variable with no value: nothing is deployed, and the error says how.
    let (ok, _, err) = deploy_spin_app(&node, None);
    assert!(!ok);
    assert!(err.contains("SPIN_VARIABLE_AUDIENCE"), "{err}");
    let (_, listed) = admin.get("/api/v1/functions").await;
    assert_eq!(listed["functions"].as_array().unwrap().len(), 0, "{listed}");

    let (ok, out, err) = deploy_spin_app(&node, Some("Glint"));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("deployed greeter v1") && out.contains("deployed counter v1"),
        "{out}"
    );

    // Variables: the component's `message`, made from the application's variables.
    // The request as Spin shapes it: the whole path, and what the route matched.
    assert_eq!(
        node.call("/spin-greet/there").await,
        (
            200,
            "Hello, Glint (path /spin-greet/there; path info /there; not_declared is undefined)\n"
                .into()
        )
    );

    // KV: Spin's default store, kept between requests; another store is denied.
    for want in ["1 ", "2 "] {
        let (status, body) = node.send(Method::POST, "/spin-count", Vec::new()).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with(want), "{body}");
    }
    assert_eq!(
        node.call("/spin-count").await,
        (200, "2 (keys: visits; visits exists: true)\n".into())
    );
    let (status, body) = node.call("/spin-count?store=other").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    // The store is the tenant's `default`, which Glint's own API shows.
    let (status, value) = admin.get("/api/v1/kv/default/keys/visits").await;
    assert_eq!(
        (status, value),
        (200, serde_json::json!(2)),
        "the value Spin's store wrote"
    );

    // A component using a Spin interface Glint does not offer is refused, by name.
    let built = Command::new("cargo")
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--release",
            "--locked",
            "-p",
            "sqlite-user",
        ])
        .current_dir(repo_root().join("tests/fixtures/spin-app"))
        .status()
        .unwrap();
    assert!(built.success());
    let sqlite = std::fs::read(
        repo_root().join("tests/fixtures/spin-app/target/wasm32-wasip2/release/sqlite_user.wasm"),
    )
    .unwrap();
    let (status, body) = admin.deploy("sqlite-user", "", sqlite).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_import", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("fermyon:spin/sqlite@2.0.0"), "{body}");
    assert!(message.contains("does not offer"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spin_3_app_on_wasi_03_deploys_from_its_spin_toml_and_runs() {
    let node = Node::start();
    let admin = node.admin();

    let (ok, out, err) = deploy_app(&node, "tests/fixtures/spin3-app", None);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("deployed greeter3 v1") && out.contains("deployed counter3 v1"),
        "{out}"
    );
    for name in ["greeter3", "counter3"] {
        let (_, info) = admin.get(&format!("/api/v1/functions/{name}")).await;
        assert_eq!(info["versions"][0]["world"], "wasi-0.3", "{info}");
    }

    // spin:variables@3.0.0: the default `audience`, as no SPIN_VARIABLE_AUDIENCE is set.
    assert_eq!(
        node.call("/spin3-greet/there").await,
        (
            200,
            "Hello, Spin 3 (path /spin3-greet/there; path info /there; not_declared is undefined)\n"
                .into()
        )
    );

    // spin:key-value@3.0.0: get, set, exists and the key stream, kept between requests.
    for n in 1..=3 {
        let (status, body) = node.send(Method::POST, "/spin3-count", Vec::new()).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with(&format!("{n} ")), "{body}");
    }
    assert_eq!(
        node.call("/spin3-count").await,
        (
            200,
            "3 (keys: visit-1,visit-2,visit-3,visits; visits exists: true)\n".into()
        )
    );
    assert_eq!(
        node.call("/spin3-count?delete=visit-2").await,
        (200, "deleted visit-2\n".into())
    );
    assert_eq!(
        node.call("/spin3-count").await,
        (
            200,
            "3 (keys: visit-1,visit-3,visits; visits exists: true)\n".into()
        )
    );
    let (status, body) = node.call("/spin3-count?store=other").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    // The same tenant store Glint's API shows.
    let (status, value) = admin.get("/api/v1/kv/default/keys/visits").await;
    assert_eq!((status, value), (200, serde_json::json!(3)));
}
