//! The `glint` CLI against a real node: deploy a folder, list, info, execute, delete, and
//! the errors a user meets first.

use std::process::{Command, Output};

use glint_e2e::{Node, glint_bin, repo_root};

fn glint(node: &Node, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(glint_bin());
    cmd.args(args)
        .env("GLINT_API_URL", &node.admin_url)
        .env("GLINT_DATA_DIR", "/nonexistent-glint-test-dir")
        .env_remove("GLINT_API_KEY");
    if let Some(k) = key {
        cmd.env("GLINT_API_KEY", k);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_function_life_cycle_from_the_command_line() {
    let node = Node::start();
    let key = Some(node.key.as_str());
    let hello_dir = repo_root().join("examples/hello");

    let (ok, out, err) = text(&glint(&node, key, &["deploy", hello_dir.to_str().unwrap()]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployed hello v1"), "{out}");
    assert!(out.contains(&format!("{}/hello", node.data_url)), "{out}");

    let (ok, out, _) = text(&glint(&node, key, &["list"]));
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("hello") && l.contains("v1")),
        "{out}"
    );

    let (ok, out, _) = text(&glint(&node, key, &["list", "--output", "json"]));
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["functions"][0]["route"], "/hello");

    let (ok, out, _) = text(&glint(&node, key, &["info", "hello"]));
    assert!(ok);
    assert!(
        out.contains("route:  /hello") && out.contains("GREETING") && out.contains("memory 64 MiB"),
        "{out}"
    );

    let (ok, out, err) = text(&glint(&node, key, &["execute", "hello"]));
    assert!(ok, "{err}");
    assert_eq!(out, "Hello from Glint!\n");
    let (ok, out, _) = text(&glint(
        &node,
        key,
        &[
            "execute", "hello", "-X", "POST", "--path", "/echo", "--data", "ping", "-i",
        ],
    ));
    assert!(ok);
    assert!(
        out.starts_with("HTTP/1.1 200 OK")
            && out.contains("x-glint-execution-id:")
            && out.ends_with("\n\nping"),
        "{out}"
    );
    let (ok, out, _) = text(&glint(&node, key, &["execute", "hello", "--version", "v1"]));
    assert!(ok);
    assert_eq!(out, "Hello from Glint!\n");

    // A .wasm plus --name.
    let wasm = repo_root().join("target/wasm32-wasip2/release/hello.wasm");
    let (ok, out, err) = text(&glint(
        &node,
        key,
        &["deploy", wasm.to_str().unwrap(), "--name", "hello2"],
    ));
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployed hello2 v1"));

    let (ok, out, _) = text(&glint(&node, key, &["delete", "hello2", "--force"]));
    assert!(ok);
    assert!(out.contains("deleted"));

    // Errors: non-zero exit and a message that says what to do.
    let (ok, _, err) = text(&glint(&node, key, &["info", "nope"]));
    assert!(!ok);
    assert!(
        err.contains("function 'nope' does not exist") && err.contains("glint list"),
        "{err}"
    );
    let (ok, _, err) = text(&glint(&node, Some("glint_wrong"), &["list"]));
    assert!(!ok);
    assert!(err.contains("invalid or revoked API key"), "{err}");
    let (ok, _, err) = text(&glint(&node, None, &["list"]));
    assert!(!ok);
    assert!(err.contains("GLINT_API_KEY"), "{err}");
    let (ok, _, err) = text(&glint(&node, key, &["deploy", "/nonexistent/fn"]));
    assert!(!ok);
    assert!(err.contains("cannot read"), "{err}");
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("glint.toml"),
        "name = \"bad\"\n[limits]\nmemory = 3\n",
    )
    .unwrap();
    let (ok, _, err) = text(&glint(
        &node,
        key,
        &["deploy", bad.path().to_str().unwrap()],
    ));
    assert!(!ok);
    assert!(
        err.contains("glint.toml") && err.contains("memory"),
        "{err}"
    );
    let (ok, _, err) = text(&glint(
        &node,
        key,
        &["deploy", wasm.to_str().unwrap(), "--name", "../x"],
    ));
    assert!(!ok);
    assert!(err.contains("function name \"../x\" is invalid"), "{err}");
}

#[test]
fn glint_admin_key_overrides_the_generated_key() {
    let key = "glint_my_own_admin_key_for_tests";
    let node = Node::start_with_admin_key(key);
    assert!(
        !node.banner.contains("Admin API key"),
        "no key should be generated: {}",
        node.banner
    );
    assert!(!node.data_dir.join("admin-key").exists());
    assert!(glint(&node, Some(key), &["list"]).status.success());
    let (ok, _, err) = text(&glint(&node, Some("glint_some_other_key"), &["list"]));
    assert!(!ok);
    assert!(err.contains("invalid or revoked API key"), "{err}");
}

#[test]
fn first_start_prints_the_admin_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_in(dir.path());
    assert!(
        node.banner.contains(&node.key),
        "the first start should print the key: {}",
        node.banner
    );
    assert!(node.stop());
    node.restart();
    assert!(
        !node.banner.contains(&node.key),
        "a restart must not print the key again: {}",
        node.banner
    );
    assert!(
        glint(&node, Some(&node.key.clone()), &["list"])
            .status
            .success(),
        "the key outlives a restart"
    );
}
