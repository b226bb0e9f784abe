//! Crashes (kill -9) during and right after deploys: the previous version keeps serving,
//! no half-written version appears, and an acknowledged deploy survives.

use std::time::Duration;

use glint_e2e::{Node, guest, hello_manifest};
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
    for (round, delay_ms) in [0u64, 5, 15, 40, 120].into_iter().enumerate() {
        let admin = node.admin();
        let greeting = format!("Round{round}");
        let deploy = tokio::spawn({
            let manifest = hello_manifest(&greeting);
            async move { admin.deploy("hello", &manifest, guest("hello")).await }
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
        let acknowledged = matches!(deploy.await, Ok((201, _)));
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
