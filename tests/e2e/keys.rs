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
