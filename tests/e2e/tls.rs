//! TLS on both listeners: HTTPS with HTTP/2 by ALPN, plain HTTP refused, and the CLI
//! trusting a self-signed certificate with --ca-cert.

use std::ffi::OsStr;

use glint_e2e::{Node, glint_bin};

#[tokio::test(flavor = "multi_thread")]
async fn both_listeners_speak_tls() {
    let (node, cert) = Node::start_tls();
    let cert_path = &cert.path;
    assert!(
        node.data_url.starts_with("https://localhost:"),
        "{}",
        node.data_url
    );
    assert!(
        node.admin_url.starts_with("https://localhost:"),
        "{}",
        node.admin_url
    );

    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut admin = node.admin();
    admin.http = trusted.clone();
    admin.deploy_hello("Hello").await;

    let resp = trusted
        .get(format!("{}/hello", node.data_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.version(),
        reqwest::Version::HTTP_2,
        "ALPN should pick h2"
    );
    assert_eq!(resp.text().await.unwrap(), "Hello from Glint!\n");

    // A client that does not trust the certificate, and plain HTTP, get nowhere.
    let untrusted = glint_e2e::http_client();
    assert!(
        untrusted
            .get(format!("{}/hello", node.data_url))
            .send()
            .await
            .is_err()
    );
    let plain = node.data_url.replace("https://", "http://");
    assert!(
        untrusted
            .get(format!("{plain}/hello"))
            .send()
            .await
            .is_err()
    );

    // The CLI trusts it with --ca-cert.
    let out = std::process::Command::new(glint_bin())
        .args([
            "execute",
            "hello",
            "--url",
            &node.admin_url,
            "--key",
            &node.key,
            "--ca-cert",
        ])
        .arg(cert_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello from Glint!\n");
}

#[test]
fn bad_tls_files_stop_the_node_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let err = glint_e2e::serve_refused(
        &[
            OsStr::new("--tls-cert"),
            bogus.as_os_str(),
            OsStr::new("--tls-key"),
            bogus.as_os_str(),
        ],
        &[],
    );
    assert!(
        err.contains("cannot read the TLS certificate") && err.contains("PEM"),
        "{err}"
    );
}
