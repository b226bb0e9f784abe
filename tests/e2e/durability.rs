//! Crashes (kill -9) during and right after deploys: the previous version keeps serving,
//! no half-written version appears, and an acknowledged deploy survives.

use std::time::Duration;

use glint_e2e::{Node, custom_section, guest, hello_manifest};
use reqwest::multipart::{Form, Part};
use sha2::{Digest, Sha256};

/// Checks what a restarted node holds: every listed version is whole (its bytes match its
/// sha256), `latest` points at a listed version, and the route serves.
async fn assert_consistent(node: &Node) -> Vec<String> {
    let admin = node.admin();
    let (status, body) = admin.get("/api/v1/functions/hello/versions").await;
    assert_eq!(status, 200, "{body}");
    let versions: Vec<String> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_string())
        .collect();
    for v in body["versions"].as_array().unwrap() {
        let wasm = admin
            .request(
                reqwest::Method::GET,
                &format!(
                    "/api/v1/functions/hello/versions/{}/wasm",
                    v["version"].as_str().unwrap()
                ),
            )
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&wasm)),
            v["sha256"].as_str().unwrap(),
            "version {} is not whole",
            v["version"]
        );
    }
    let (_, aliases) = admin.get("/api/v1/functions/hello/aliases").await;
    let latest = &aliases["aliases"][0]["targets"][0]["version"];
    assert!(
        versions.contains(&format!("v{latest}")),
        "latest points at v{latest}, not in {versions:?}"
    );
    let (status, text) = node.call("/hello").await;
    assert_eq!(status, 200, "{text}");
    versions
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_during_upload_keeps_the_previous_version() {
    let mut node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;

    // Upload half a component, then stall: the node is mid-deploy when it dies.
    let bytes = guest("hello");
    let half = bytes[..bytes.len() / 2].to_vec();
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(half))])
        .chain(futures::stream::pending());
    let part = Part::stream_with_length(reqwest::Body::wrap_stream(stream), bytes.len() as u64)
        .file_name("c.wasm");
    let form = Form::new()
        .text("manifest", hello_manifest("Howdy"))
        .part("component", part);
    let upload = admin
        .request(reqwest::Method::POST, "/api/v1/functions/hello/versions")
        .multipart(form);
    let pending = tokio::spawn(async move { upload.send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "the stalled upload finished: {:?}",
        pending.await
    );
    node.kill9();
    assert!(
        pending.await.unwrap().is_err(),
        "the upload cannot have been acknowledged"
    );

    node.restart();
    assert_eq!(assert_consistent(&node).await, vec!["v1"]);
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
}

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_deploys_survive_a_crash_at_any_moment() {
    let mut node = Node::start();
    assert_eq!(
        node.admin()
            .deploy("hello", &hello_manifest("Hello"), guest("hello"))
            .await
            .0,
        201
    );

    // Kill the node at different moments of a deploy: while compiling, while storing,
    // right after it answers. Whatever was acknowledged must be there after the restart.
    let mut shas = std::collections::HashSet::new();
    for (round, delay_ms) in [0u64, 5, 15, 40, 120].into_iter().enumerate() {
        let admin = node.admin();
        let greeting = format!("Round{round}");
        // 256 KiB that differ each round.
        let payload: Vec<u8> = (0..256 * 1024u32)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(round as u32 * 7919) >> 11) as u8)
            .collect();
        // A custom section is valid anywhere in a component: appended, it makes each
        // round's upload different, so a torn artefact could not pass for another one.
        let mut component = guest("hello");
        component.extend(custom_section("glint-test-round", &payload));
        let deploy = tokio::spawn({
            let manifest = hello_manifest(&greeting);
            async move { admin.deploy("hello", &manifest, component).await }
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if delay_ms == 120 {
            // Wait for the answer, so this round's deploy is surely acknowledged.
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while !deploy.is_finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
        }
        node.kill9();
        let answer = deploy.await;
        let acknowledged = matches!(answer, Ok((201, _)));
        if let Ok((201, body)) = &answer {
            assert!(
                shas.insert(body["sha256"].as_str().unwrap_or_default().to_string()),
                "round {round} uploaded the same bytes as an earlier round"
            );
        }
        node.restart();
        let versions = assert_consistent(&node).await;
        let (_, text) = node.call("/hello").await;
        if acknowledged {
            assert_eq!(
                text,
                format!("{greeting} from Glint!\n"),
                "round {round}: an acknowledged deploy was lost ({versions:?})"
            );
        }
        if delay_ms == 120 {
            assert!(
                acknowledged,
                "round {round}: the deploy was not acknowledged within 30 s"
            );
        }
    }
}

/// "Durable when acknowledged" can be seen: strace counts the node's `fsync` and
/// `fdatasync` calls on the KV store's write-ahead log, and each acknowledged KV write
/// has one of its own (SQLite's `synchronous = FULL`; with NORMAL there would be none
/// until a checkpoint).
#[tokio::test(flavor = "multi_thread")]
async fn each_acknowledged_kv_write_is_synced_to_disk() {
    if glint_e2e::nats::nodes_on_nats() {
        return; // it traces the embedded store's fsyncs; `cluster` kills NATS servers instead
    }
    use std::io::{BufRead, BufReader};
    let node = Node::start();
    node.admin().deploy_counter().await;
    let trace = node.data_dir.join("fsync.trace");
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .args(["-p", &node.pid().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace (scripts/setup installs it)");
    let stderr = strace.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let syncs = || {
        std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("kv.db-wal"))
            .count()
    };
    // Until strace is attached, writes go unseen: write until one is seen (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while syncs() == 0 {
        assert_eq!(
            node.send(reqwest::Method::POST, "/counter/warmup", Vec::new())
                .await
                .0,
            200
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no fsync of kv.db-wal seen for KV writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = syncs();
    let writes = 20;
    for _ in 0..writes {
        let (status, _) = node
            .send(reqwest::Method::POST, "/counter/n", Vec::new())
            .await;
        assert_eq!(status, 200);
    }
    // SIGINT detaches strace cleanly, with everything it saw written out.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    let _ = strace.wait();
    let synced = syncs() - before;
    assert!(
        synced >= writes,
        "{writes} acknowledged KV writes, {synced} syncs of the KV log"
    );
}

/// `--store sqlite:DIR` keeps the records and KV in DIR, apart from the data dir, and a
/// clean stop and a restart find them there. A URL of no known backend stops `glint
/// serve` at once, naming the forms it takes.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_url_says_where_the_data_lives() {
    let elsewhere = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", elsewhere.path().display());
    let mut node = Node::start_with_args(&["--store", &url]);
    node.admin().deploy_hello("Hello").await;
    assert!(
        node.stop(),
        "the node did not stop cleanly:\n{}",
        node.log()
    );
    node.restart();
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
    for file in ["glint.db", "kv.db"] {
        assert!(
            elsewhere.path().join(file).exists(),
            "{file} is not in {url}"
        );
        assert!(
            !node.data_dir.join(file).exists(),
            "{file} is in the data dir"
        );
    }

    // A store URL of no known kind, and NATS servers that are not there: each a clear
    // error, at once.
    for (url, says) in [
        (
            "redis://127.0.0.1:6379",
            "unknown store URL 'redis://127.0.0.1:6379': use sqlite:DIR (one node) or nats://HOST:PORT[,HOST:PORT...] (many nodes)",
        ),
        (
            "nats://127.0.0.1:1",
            "cannot connect to NATS at nats://127.0.0.1:1?ns=glint",
        ),
    ] {
        let data_dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(glint_e2e::glint_bin())
            .args(["serve", "--store", url, "--data-dir"])
            .arg(data_dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
