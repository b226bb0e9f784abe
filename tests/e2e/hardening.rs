//! What a hostile guest or a careless operator finds, closed, end to end:
//! - a guest cannot plant the dashboard's session cookie (cookie tossing);
//! - a storage failure reaches clients as a stable code with an incident id, never as
//!   SQLite's own text, and a deploy that answers with an error did not happen;
//! - a changed compile-cache file is never loaded: the node recompiles;
//! - a deleted function leaves no meters or metric series behind;
//! - time filters out of range are refused;
//! - a listener beyond loopback without TLS is warned about at start.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use glint_e2e::{Node, guest, hello_manifest};

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_cannot_set_the_dashboard_session_cookie() {
    let node = Node::start();
    node.admin()
        .deploy_ok("misbehave", "", guest("misbehave"))
        .await;
    let resp = node.get("/misbehave/set-cookie").await;
    assert_eq!(resp.status(), 200);
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cookies,
        ["theme=dark; Path=/"],
        "the guest's own cookies pass, Glint's do not"
    );
}

/// Drops a table under the running node, through a second SQLite connection (Python's
/// sqlite3), so the store fails for real.
fn break_secrets_table(db: &std::path::Path) {
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('DROP TABLE secrets')\n\
             print('dropped', flush=True)",
        ])
        .arg(db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(python.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "dropped");
    assert!(python.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deploy_did_not_happen_and_says_no_sqlite() {
    let mut node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;
    break_secrets_table(&node.data_dir.join("glint.db"));

    let (status, body) = admin
        .deploy("hello", &hello_manifest("Bonjour"), guest("hello"))
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "storage_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("incident"), "{message}");
    assert!(
        !message.contains("no such table") && !message.to_lowercase().contains("sqlite"),
        "a backend's raw text reached the client: {message}"
    );
    assert!(
        node.log().contains("no such table"),
        "the node's log must keep the detail"
    );

    // The refused deploy left nothing: one version, still serving, also after a restart.
    let (_, versions) = admin.get("/api/v1/functions/hello/versions").await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
    node.kill9();
    node.restart();
    let (_, versions) = node.admin().get("/api/v1/functions/hello/versions").await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
    assert_eq!(node.call("/hello").await.1, "Hello from Glint!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_compile_cache_file_is_recompiled_not_loaded() {
    let mut node = Node::start();
    node.admin().deploy_hello("Hello").await;
    assert!(node.stop());
    let cached: Vec<_> = walk(&node.data_dir.join("compiled"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // One flipped byte in the middle of the machine code.
    let mut bytes = std::fs::read(&cached[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&cached[0], &bytes).unwrap();

    node.restart();
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
    let (_, status) = node.admin().get("/api/v1/node").await;
    assert_eq!(
        status["compiles"], 1,
        "the changed file was loaded: {status}"
    );
    assert_eq!(status["cache_loads"], 0, "{status}");
    assert!(
        node.log().contains("does not match its MAC"),
        "{}",
        node.log()
    );
    // What it wrote back is whole again: the next restart loads it.
    assert!(node.stop());
    node.restart();
    assert_eq!(node.call("/hello").await.0, 200);
    let (_, status) = node.admin().get("/api/v1/node").await;
    assert_eq!(
        (status["compiles"].as_u64(), status["cache_loads"].as_u64()),
        (Some(0), Some(1))
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_function_leaves_no_meters_or_series() {
    let node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;
    admin.deploy_ok("gone", "", guest("hello")).await;
    admin
        .deploy_ok("gone", "[env]\nGREETING = \"Bye\"\n", guest("hello"))
        .await;
    for path in ["/hello", "/gone"] {
        assert_eq!(node.call(path).await.0, 200);
    }
    let metrics = || admin.get_text("/metrics");
    let before = metrics().await;
    assert!(
        before.contains("function=\"gone\",version=\"v1\""),
        "{before}"
    );
    let (_, status) = admin.get("/api/v1/node").await;
    assert_eq!(status["metered_versions"], 3, "{status}");

    // Deleting one version drops its series; deleting the function drops all of it.
    assert_eq!(
        admin.delete("/api/v1/functions/gone/versions/1").await.0,
        204
    );
    let (_, status) = admin.get("/api/v1/node").await;
    assert_eq!(status["metered_versions"], 2, "{status}");
    let after_version = metrics().await;
    assert!(
        !after_version.contains("function=\"gone\",version=\"v1\""),
        "{after_version}"
    );
    assert!(
        after_version.contains("function=\"gone\",version=\"v2\""),
        "{after_version}"
    );
    assert_eq!(admin.delete("/api/v1/functions/gone").await.0, 204);
    let after = metrics().await;
    assert!(!after.contains("function=\"gone\""), "{after}");
    assert!(after.contains("function=\"hello\""), "{after}");
    let (_, status) = admin.get("/api/v1/node").await;
    assert_eq!(status["metered_versions"], 1, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn time_filters_out_of_range_are_refused() {
    let node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;
    for query in [
        format!("start={}", i64::MIN),
        format!("end={}", i64::MIN),
        format!("end={}", i64::MAX),
        "start=-1".to_string(),
    ] {
        for path in ["/api/v1/logs", "/api/v1/usage"] {
            let (status, body) = admin.get(&format!("{path}?{query}")).await;
            assert_eq!(status, 400, "{path}?{query}: {body}");
            assert_eq!(body["error"]["code"], "invalid_time", "{body}");
        }
    }
    // A duration far back saturates at the epoch rather than overflowing.
    let (status, body) = admin.get("/api/v1/usage?start=99999999999d").await;
    assert_eq!(status, 200, "{body}");
}

#[test]
fn listeners_beyond_loopback_without_tls_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(glint_e2e::glint_bin())
        .env("GLINT_ADMIN_KEY", "glint_warning_test_key_0123456789abcdef")
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The warning comes before the node is ready; read its log up to "ready".
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("glint node ready") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("the data plane listens on 0.0.0.0:0, beyond loopback, without TLS"),
        "{seen}"
    );
    assert!(
        !seen.contains("the admin API listens"),
        "the admin API is on loopback: {seen}"
    );
}
