//! Every bad input gets the right 4xx with a message that says what to do, stores
//! nothing, and leaves the node serving the other functions.

use glint_e2e::{Node, guest};
use serde_json::Value;

/// Asserts a JSON error with `status` and `code` whose message mentions `hint`.
fn assert_error(got: &(u16, Value), status: u16, code: &str, hint: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    let message = got.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(hint),
        "message {message:?} should mention {hint:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_are_refused_and_store_nothing() {
    let node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, &str, Vec<u8>, &str, &str)> = vec![
        (
            "core",
            "",
            b"\0asm\x01\0\0\0".to_vec(),
            "not_a_component",
            "wasm32-wasip2",
        ),
        (
            "command",
            "",
            guest("cli-command"),
            "missing_http_handler",
            "wasi:http/incoming-handler",
        ),
        ("random", "", random, "not_wasm", "not WebAssembly"),
        ("empty", "", Vec::new(), "empty_component", "empty"),
        (
            "truncated",
            "",
            guest("hello")[..5000].to_vec(),
            "invalid_component",
            "invalid",
        ),
        (
            "badkey",
            "[limits]\nmemroy_mb = 64\n",
            guest("hello"),
            "invalid_manifest",
            "memroy_mb",
        ),
        (
            "badvalue",
            "[limits]\nmemory_mb = 0\n",
            guest("hello"),
            "invalid_manifest",
            "limits.memory_mb",
        ),
        (
            "badtype",
            "[limits]\nmemory_mb = \"lots\"\n",
            guest("hello"),
            "invalid_manifest",
            "memory_mb",
        ),
        (
            "badroute",
            "route = \"/a/../b\"\n",
            guest("hello"),
            "invalid_manifest",
            "route",
        ),
        (
            "othername",
            "name = \"someone-else\"\n",
            guest("hello"),
            "invalid_manifest",
            "name",
        ),
        (
            "taken",
            "route = \"/hello\"\n",
            guest("hello"),
            "conflict",
            "route '/hello'",
        ),
        (
            "badstore",
            "[kv]\nstores = [\"no spaces\"]\n",
            guest("hello"),
            "invalid_manifest",
            "kv.stores",
        ),
    ];
    for (name, manifest, bytes, code, hint) in cases {
        let got = admin.deploy(name, manifest, bytes).await;
        let status = if code == "conflict" { 409 } else { 400 };
        assert_error(&got, status, code, hint);
        let (status, _) = admin.get(&format!("/api/v1/functions/{name}")).await;
        assert_eq!(
            status, 404,
            "a refused deploy of {name} left a function behind"
        );
    }

    // Names with '/', '..' or control characters.
    for bad in ["a%2Fb", "a%07b", "a%20b", "a%0Ab"] {
        let got = admin.deploy(bad, "", guest("hello")).await;
        assert!(got.0 == 400, "{bad}: {}", got.1);
        assert_eq!(got.1["error"]["code"], "invalid_name", "{bad}: {}", got.1);
    }

    // `..` as a path segment: HTTP clients normalise it away, so send it raw.
    let reply = raw_deploy(&node, "..", &node.key);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("invalid_name"), "{reply}");

    // Nothing but hello was stored, and hello still serves.
    let (_, list) = admin.get("/api/v1/functions").await;
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["hello"]);
    let (_, versions) = admin.get("/api/v1/functions/hello/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_wrong_keys_get_401() {
    let node = Node::start();
    let none = node.admin_with_key(None);
    assert_error(
        &none.get("/api/v1/functions").await,
        401,
        "unauthorized",
        "Authorization: Bearer",
    );
    assert_error(
        &none.deploy("hello", "", guest("hello")).await,
        401,
        "unauthorized",
        "Authorization",
    );
    let wrong = node.admin_with_key(Some("glint_0000000000000000000000000000000000000000"));
    assert_error(
        &wrong.get("/api/v1/functions").await,
        401,
        "unauthorized",
        "invalid",
    );
    assert_error(
        &wrong.deploy("hello", "", guest("hello")).await,
        401,
        "unauthorized",
        "invalid",
    );
    // Health and version need no key.
    assert_eq!(none.get("/healthz").await.0, 200);
    assert_eq!(none.get("/readyz").await.0, 200);
    assert_eq!(none.get("/version").await.0, 200);
    // Nothing was deployed by the refused calls.
    let (_, list) = node.admin().get("/api/v1/functions").await;
    assert_eq!(list["functions"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_get_413() {
    let node = Node::start();
    let admin = node.admin();
    let manifest = "[limits]\nmax_body_bytes = 1024\n";
    admin.deploy_ok("hello", manifest, guest("hello")).await;
    let http = glint_e2e::http_client();
    let url = format!("{}/hello/echo", node.data_url);

    let ok = http.post(&url).body(vec![b'a'; 1024]).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap().len(), 1024);

    // Declared too large.
    let resp = http.post(&url).body(vec![b'a'; 1025]).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_body_bytes")
    );

    // Chunked, with no length up front: caught while reading.
    let chunks = futures::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'b'; 512]))),
    );
    let resp = http
        .post(&url)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // The node goes on serving.
    assert_eq!(
        node.call("/hello").await,
        (200, "Hello from Glint!\n".to_string())
    );
}

/// A deploy sent as raw HTTP/1.1 bytes, with the path exactly as given.
fn raw_deploy(node: &Node, name: &str, key: &str) -> String {
    use std::io::{Read, Write};
    let addr = node.admin_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let body = guest("hello");
    let head = format!(
        "POST /api/v1/functions/{name}/versions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
         content-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Every manifest of `tests/bad-input/manifests` gets the error its first line names.
#[tokio::test(flavor = "multi_thread")]
async fn the_bad_manifest_corpus_gets_its_errors() {
    let node = Node::start();
    let admin = node.admin();
    admin.deploy_hello("Hello").await;
    let dir = glint_e2e::repo_root().join("tests/bad-input/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus is in {}", dir.display());
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
        let (code, hint) = expect.split_once(": ").unwrap();
        let got = admin.deploy("corpus", &text, guest("hello")).await;
        let what = file.file_name().unwrap().to_string_lossy();
        let message = got.1["error"]["message"].as_str().unwrap_or_default();
        if got.0 != 400 || got.1["error"]["code"] != code || !message.contains(hint) {
            wrong.push(format!(
                "{what}: expected {code} mentioning {hint:?}, got {} {}",
                got.0, got.1
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        files.len(),
        wrong.join("\n")
    );
    // Nothing was stored, and the node still serves.
    assert_eq!(admin.get("/api/v1/functions/corpus").await.0, 404);
    assert_eq!(node.call("/hello").await.0, 200);
}

/// Every upload of `tests/bad-input/uploads` gets the error `expect.txt` names for it.
#[tokio::test(flavor = "multi_thread")]
async fn the_bad_upload_corpus_gets_its_errors() {
    let node = Node::start();
    let admin = node.admin();
    let dir = glint_e2e::repo_root().join("tests/bad-input/uploads");
    let expect = std::fs::read_to_string(dir.join("expect.txt")).unwrap();
    let mut checked = 0;
    for row in expect
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = row.split_whitespace();
        let (file, code) = (parts.next().unwrap(), parts.next().unwrap());
        let hint = parts.collect::<Vec<_>>().join(" ");
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let got = admin.deploy("upload", "", bytes).await;
        assert_error(&got, 400, code, &hint);
        checked += 1;
    }
    assert!(checked >= 6, "{checked} uploads checked");
    assert_eq!(admin.get("/api/v1/functions/upload").await.0, 404);
}
