//! API keys with roles: read keys read, deploy keys deploy, only admins manage keys, and
//! a revoked key stops working at once.

use glint_e2e::{Node, guest, hello_manifest};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn roles_limit_what_keys_can_do() {
    let node = Node::start();
    let admin = node.admin();
    let create = |name: &str, role: &str| {
        let req = admin
            .request(reqwest::Method::POST, "/api/v1/keys")
            .json(&json!({ "name": name, "role": role }));
        admin.send(req)
    };
    let (status, read) = create("ci-reader", "read").await;
    assert_eq!(status, 201, "{read}");
    let (status, deployer) = create("ci-deployer", "deploy").await;
    assert_eq!(status, 201, "{deployer}");
    let (status, bad) = create("x", "superuser").await;
    assert_eq!(status, 400, "{bad}");

    let reader = node.admin_with_key(read["key"].as_str());
    let (status, body) = reader
        .deploy("hello", &hello_manifest("Hello"), guest("hello"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'read'")
    );
    assert_eq!(reader.get("/api/v1/functions").await.0, 200);

    let deploy = node.admin_with_key(deployer["key"].as_str());
    deploy.deploy_hello("Hello").await;
    assert_eq!(deploy.get("/api/v1/keys").await.0, 403);
    assert_eq!(reader.get("/api/v1/functions/hello").await.0, 200);
    assert_eq!(reader.delete("/api/v1/functions/hello").await.0, 403);

    // Listing shows names and roles, never keys or hashes.
    let (status, keys) = admin.get("/api/v1/keys").await;
    assert_eq!(status, 200);
    let text = keys.to_string();
    assert!(!text.contains(read["key"].as_str().unwrap()));
    assert_eq!(keys["keys"].as_array().unwrap().len(), 3, "{keys}");

    let (status, _) = admin
        .delete(&format!("/api/v1/keys/{}", read["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 204);
    assert_eq!(reader.get("/api/v1/functions").await.0, 401);
    // Revoking one key leaves the others working.
    assert_eq!(deploy.get("/api/v1/functions").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_writes_a_private_admin_key() {
    let node = Node::start();
    let path = node.data_dir.join("admin-key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    if glint_e2e::nats::nodes_on_nats() {
        return; // what follows reads the embedded store's files
    }
    // Only the key's hash is in the database.
    let mut stored = std::fs::read(node.data_dir.join("glint.db")).unwrap_or_default();
    stored.extend(std::fs::read(node.data_dir.join("glint.db-wal")).unwrap_or_default());
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    // The hash is there, so these are the files the key went to...
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(node.key.as_bytes()));
    assert!(
        contains(hash.as_bytes()),
        "the key's hash is not in the database files"
    );
    // ...and the key itself is not.
    assert!(
        !contains(node.key.as_bytes()),
        "the admin key is stored in clear"
    );
}

/// The status of `GET /api/v1/functions` with `key`: 200 for a live key, 401 otherwise.
async fn list_status(node: &Node, key: &str) -> u16 {
    node.admin_with_key(Some(key))
        .get("/api/v1/functions")
        .await
        .0
}

/// The id of the tenant's key called `name`, as `glint keys list` shows it.
async fn key_id(admin: &glint_e2e::Admin, name: &str) -> String {
    let (status, keys) = admin.get("/api/v1/keys").await;
    assert_eq!(status, 200, "{keys}");
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no key {name:?} in {keys}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_first_key_stays_revoked_across_restarts() {
    let mut node = Node::start();
    let first = node.key.clone();
    let (status, second) = node
        .admin()
        .send(
            node.admin()
                .request(reqwest::Method::POST, "/api/v1/keys")
                .json(&json!({ "name": "ops", "role": "operator" })),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let second = second["key"].as_str().unwrap().to_string();
    // A second operator key (an admin's may not revoke an operator's).
    let ops = node.admin_with_key(Some(&second));
    let id = key_id(&ops, "admin (first start)").await;
    assert_eq!(ops.delete(&format!("/api/v1/keys/{id}")).await.0, 204);
    assert_eq!(node.admin().get("/api/v1/functions").await.0, 401);

    assert!(node.stop());
    node.restart();
    assert_eq!(node.key, first, "the admin-key file is left as it was");
    assert_eq!(
        node.admin().get("/api/v1/functions").await.0,
        401,
        "a restart brought the revoked first key back"
    );
    assert_eq!(
        node.admin_with_key(Some(&second))
            .get("/api/v1/functions")
            .await
            .0,
        200
    );
    assert!(
        !node.banner.contains("Admin API key"),
        "no new first key is made once any key was: {}",
        node.banner
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_glint_admin_key_revokes_the_one_before() {
    let old = "glint_rotation_test_old_key_0123456789";
    let new = "glint_rotation_test_new_key_9876543210";
    let mut node = Node::start_with_admin_key(old);
    assert_eq!(node.admin().get("/api/v1/functions").await.0, 200);
    assert!(node.stop());
    node.restart_with_admin_key(Some(new));
    assert_eq!(list_status(&node, new).await, 200);
    assert_eq!(
        list_status(&node, old).await,
        401,
        "the rotated-out GLINT_ADMIN_KEY still works"
    );
    assert!(
        node.log().contains("GLINT_ADMIN_KEY changed"),
        "the rotation is not in the log:\n{}",
        node.log()
    );
    // Setting the old value again does not revive it.
    assert!(node.stop());
    node.restart_with_admin_key(Some(old));
    assert_eq!(list_status(&node, old).await, 401);
    assert!(
        node.log().contains("holds a key that was revoked"),
        "{}",
        node.log()
    );
}

#[test]
fn a_short_glint_admin_key_is_refused() {
    let no_args: [&str; 0] = [];
    let err = glint_e2e::serve_refused(&no_args, &[("GLINT_ADMIN_KEY", Some("hunter2"))]);
    assert!(err.contains("at least 32"), "{err}");
    assert!(err.contains("openssl rand"), "{err}");
}

/// A live log follower whose key is revoked is told so and cut off.
#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_key_ends_its_log_stream() {
    use futures::StreamExt;
    let node = Node::start();
    let admin = node.admin();
    let (status, reader) = admin
        .send(
            admin
                .request(reqwest::Method::POST, "/api/v1/keys")
                .json(&json!({ "name": "tail", "role": "read" })),
        )
        .await;
    assert_eq!(status, 201, "{reader}");
    let follower = node.admin_with_key(reader["key"].as_str());
    let stream = follower
        .request(reqwest::Method::GET, "/api/v1/logs/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let id = reader["id"].as_str().unwrap();
    assert_eq!(admin.delete(&format!("/api/v1/keys/{id}")).await.0, 204);
    // The stream ends (bounded here at 20 s; the node rechecks every second).
    let mut body = stream.bytes_stream();
    let mut seen = String::new();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream of a revoked key is still open: {seen}"
    );
    assert!(seen.contains("event: revoked"), "{seen}");
}
