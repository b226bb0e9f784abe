//! Host capabilities end to end, in Rust, Python and JavaScript: KV stores, configuration
//! and secrets, and outbound HTTP, through the guest SDKs.
//!
//! The three `caps` fixtures (tests/fixtures/caps, caps-python, caps-js) answer the same
//! HTTP contract, so every check here runs against each language alike.

use futures::StreamExt;
use glint_e2e::{Admin, Node, built, guest, upstream};
use reqwest::Method;

/// The three fixtures: (function name, component).
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("caps", guest("caps")),
        ("caps-py", built("tests/fixtures/caps-python", "caps-py")),
        ("caps-js", built("tests/fixtures/caps-js", "caps-js")),
    ]
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn set_secret(node: &Node, name: &str, value: &str) {
    let admin = node.admin();
    let (status, body) = admin
        .put(
            &format!("/api/v1/secrets/{name}"),
            serde_json::json!({ "value": value }),
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

/// Everything the admin API says about functions, secrets and logs, as one string.
async fn everything_the_api_shows(admin: &Admin, functions: &[&str]) -> String {
    let mut all = String::new();
    for path in ["/api/v1/secrets", "/api/v1/functions", "/api/v1/kv"] {
        all.push_str(&admin.get(path).await.1.to_string());
    }
    for f in functions {
        for suffix in ["", "/versions", "/env", "/aliases", "/status"] {
            let (_, body) = admin.get(&format!("/api/v1/functions/{f}{suffix}")).await;
            all.push_str(&body.to_string());
        }
        for line in admin.logs(f, "lines=1000&since=0").await {
            all.push_str(&line.to_string());
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_config_secrets_and_outbound_in_three_languages() {
    let (port, hits) = upstream();
    let node = Node::start();
    let admin = node.admin();
    let secret = "tok-9f3a1c77e2-secret";
    set_secret(&node, "API_TOKEN", secret).await;

    let manifest = format!(
        "secrets = [\"API_TOKEN\"]\n[env]\nGREETING = \"hi there\"\n[kv]\nstores = [\"data\"]\n\
         [outbound]\nallowed_hosts = [\"http://127.0.0.1:{port}\"]\nmax_requests = 2\n"
    );
    let fixtures = fixtures();
    for (name, component) in &fixtures {
        admin.deploy_ok(name, &manifest, component.clone()).await;
    }

    for (name, _) in &fixtures {
        let call = |method: Method, path: String, body: &str| {
            let node = &node;
            let body = body.as_bytes().to_vec();
            async move { node.send(method, &format!("/{name}{path}"), body).await }
        };
        let key = format!("{name}/greeting");
        let kpath = format!("/kv/data/{}", pct(&key));

        // KV: the life of one key, seen by the guest and by the admin API.
        assert_eq!(
            call(Method::GET, kpath.clone(), "").await,
            (404, "not found".into()),
            "{name}"
        );
        assert_eq!(
            call(Method::PUT, kpath.clone(), "hello kv").await.0,
            204,
            "{name}"
        );
        assert_eq!(
            call(Method::GET, kpath.clone(), "").await,
            (200, "hello kv".into()),
            "{name}"
        );
        assert_eq!(
            call(Method::GET, format!("{kpath}/exists"), "").await,
            (200, "true".into()),
            "{name}"
        );
        let via_api = admin
            .http
            .get(format!("{}/api/v1/kv/data/keys/{}", admin.base, pct(&key)))
            .bearer_auth(admin.key.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(via_api.text().await.unwrap(), "hello kv", "{name}");
        let (_, listing) = call(Method::GET, "/kv/data".into(), "").await;
        assert!(listing.lines().any(|l| l == key), "{name}: {listing}");
        assert_eq!(
            call(Method::DELETE, kpath.clone(), "").await.0,
            204,
            "{name}"
        );
        assert_eq!(
            call(Method::GET, format!("{kpath}/exists"), "").await,
            (200, "false".into()),
            "{name}"
        );

        // Atomics: increment and compare-and-swap.
        let counter = format!("/kv/data/{name}-n");
        assert_eq!(
            call(Method::POST, format!("{counter}/increment?by=5"), "").await,
            (200, "5".into()),
            "{name}"
        );
        assert_eq!(
            call(Method::POST, format!("{counter}/increment?by=-2"), "").await,
            (200, "3".into()),
            "{name}"
        );
        assert_eq!(
            call(Method::POST, format!("{counter}/cas-increment"), "").await,
            (200, "4".into()),
            "{name}"
        );

        // Deny paths: a store the manifest does not list, and an oversize value.
        let (status, body) = call(Method::GET, "/kv/other/x".into(), "").await;
        assert_eq!(status, 500, "{name}: {body}");
        assert!(
            body.starts_with("kv error: access-denied"),
            "{name}: {body}"
        );
        let big = "x".repeat(1024 * 1024 + 1);
        let (status, body) = call(Method::PUT, "/kv/data/big".into(), &big).await;
        assert_eq!(status, 500, "{name}: {body}");
        assert!(
            body.starts_with("kv error: other:") && body.contains("at most"),
            "{name}: {body}"
        );

        // Configuration: [env] and the granted secret, through wasi:config and the env.
        assert_eq!(
            call(Method::GET, "/config/GREETING".into(), "").await,
            (200, "hi there".into()),
            "{name}"
        );
        assert_eq!(
            call(Method::GET, "/config/API_TOKEN".into(), "").await,
            (200, secret.into()),
            "{name}"
        );
        if *name == "caps-js" {
            // componentize-js leaves wasi:cli/environment out: JS reads configuration only.
            let (status, _) = call(Method::GET, "/env/GREETING".into(), "").await;
            assert_eq!(status, 501, "{name}");
        } else {
            for (var, value) in [("GREETING", "hi there"), ("API_TOKEN", secret)] {
                assert_eq!(
                    call(Method::GET, format!("/env/{var}"), "").await,
                    (200, value.into()),
                    "{name}"
                );
            }
        }
        assert_eq!(
            call(Method::GET, "/config/NOPE".into(), "").await.0,
            404,
            "{name}"
        );

        // Outbound: the allowed loopback upstream answers; any other host is denied.
        let before = hits.load(std::sync::atomic::Ordering::SeqCst);
        let url = pct(&format!("http://127.0.0.1:{port}/x"));
        let (status, body) = call(Method::GET, format!("/fetch?url={url}"), "").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "status 200\nupstream says hi"),
            "{name}"
        );
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            before + 1,
            "{name}"
        );
        let (other, other_hits) = upstream();
        let url = pct(&format!("http://127.0.0.1:{other}/x"));
        let (status, body) = call(Method::GET, format!("/fetch?url={url}"), "").await;
        assert_eq!(status, 502, "{name}: {body}");
        assert!(body.starts_with("fetch error: "), "{name}: {body}");
        assert_eq!(
            other_hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{name}"
        );
    }

    // The denied store and the denied host each left a log line naming the fix.
    let lines = admin.logs("caps", "lines=1000&since=0").await;
    let text: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        text.iter()
            .any(|m| m.contains("\"other\"") && m.contains("[kv] stores")),
        "{text:?}"
    );

    // A function whose manifest does not name the secret does not see it.
    admin
        .deploy_ok("no-secrets", "[env]\nGREETING = \"x\"\n", guest("caps"))
        .await;
    assert_eq!(node.call("/no-secrets/config/API_TOKEN").await.0, 404);
    assert_eq!(node.call("/no-secrets/env/API_TOKEN").await.0, 404);
    // Nor does it get any store: it listed none.
    let (status, body) = node.call("/no-secrets/kv/data/x").await;
    assert_eq!(
        (status, body.starts_with("kv error: access-denied")),
        (500, true),
        "{body}"
    );

    // A guest that prints its secret gets it masked in its log line.
    let (status, _) = node.call("/caps/print/API_TOKEN").await;
    assert_eq!(status, 204);
    let (status, _) = node.call("/caps/print/GREETING").await;
    assert_eq!(status, 204);
    let mut printed = Vec::new();
    for _ in 0..100 {
        printed = admin.logs("caps", "lines=1000&since=0").await;
        if printed
            .iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains("GREETING is"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let printed: Vec<&str> = printed
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert!(
        printed.contains(&"the value of API_TOKEN is [secret]"),
        "{printed:?}"
    );
    assert!(
        printed.contains(&"the value of GREETING is hi there"),
        "{printed:?}"
    );

    // A changed secret reaches running functions without a deploy.
    set_secret(&node, "API_TOKEN", "rotated-value-42").await;
    assert_eq!(
        node.call("/caps/config/API_TOKEN").await,
        (200, "rotated-value-42".into())
    );

    // Secret values appear in no API answer, no log line, and no file in plain text.
    let names: Vec<&str> = fixtures.iter().map(|(n, _)| *n).collect();
    let shown = everything_the_api_shows(&admin, &names).await;
    for value in [secret, "rotated-value-42"] {
        assert!(!shown.contains(value), "a secret value leaked into the API");
        assert!(
            !node.log().contains(value),
            "a secret value leaked into the node log"
        );
        for file in std::fs::read_dir(&node.data_dir).unwrap().flatten() {
            if file.path().is_file() {
                let bytes = std::fs::read(file.path()).unwrap();
                assert!(
                    !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                    "secret in plain text in {}",
                    file.path().display()
                );
            }
        }
    }
    if glint_e2e::nats::nodes_on_nats() {
        return; // the sealed value is in NATS, not in files of the data dir
    }
    // ...while the sealed value is in the database: the scan above could have found it.
    let db = std::fs::read(node.data_dir.join("glint.db-wal"))
        .or_else(|_| std::fs::read(node.data_dir.join("glint.db")))
        .unwrap();
    assert!(db.windows(9).any(|w| w == b"API_TOKEN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_naming_a_missing_secret_is_refused() {
    let node = Node::start();
    let admin = node.admin();
    let (status, body) = admin
        .deploy("caps", "secrets = [\"NOT_SET\"]\n", guest("caps"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "secret_not_set");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("glint secret set NOT_SET"),
        "{body}"
    );
    // Nothing was stored.
    assert_eq!(admin.get("/api/v1/functions/caps").await.0, 404);
}

/// Many parallel increments and compare-and-swaps on one key: none is lost, and the
/// acknowledged total survives a kill -9.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_increments_lose_nothing_and_survive_a_crash() {
    let mut node = Node::start();
    let admin = node.admin();
    admin
        .deploy_ok("caps", "[kv]\nstores = [\"data\"]\n", guest("caps"))
        .await;
    let (increments, swaps) = (300, 100);
    let mut paths: Vec<&str> = vec!["hits/increment"; increments];
    paths.extend(vec!["swapped/cas-increment"; swaps]);
    shuffle(&mut paths);
    let results: Vec<(&str, u16, String)> = futures::stream::iter(paths)
        .map(|p| {
            let node = &node;
            async move {
                let (status, body) = node
                    .send(Method::POST, &format!("/caps/kv/data/{p}"), Vec::new())
                    .await;
                (p, status, body)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    // Every call succeeded and saw a value no other call of its kind saw: 1..=n each.
    for (kind, n) in [
        ("hits/increment", increments),
        ("swapped/cas-increment", swaps),
    ] {
        let mut seen: Vec<usize> = results
            .iter()
            .filter(|(p, _, _)| *p == kind)
            .map(|(_, status, body)| {
                assert_eq!(*status, 200, "{kind}: {body}");
                body.trim().parse().unwrap()
            })
            .collect();
        seen.sort();
        assert_eq!(seen, (1..=n).collect::<Vec<_>>(), "{kind}");
    }
    assert_eq!(
        node.call("/caps/kv/data/hits").await,
        (200, increments.to_string())
    );
    assert_eq!(
        node.call("/caps/kv/data/swapped").await,
        (200, swaps.to_string())
    );

    node.kill9();
    node.restart();
    assert_eq!(
        node.call("/caps/kv/data/hits").await,
        (200, increments.to_string())
    );
    assert_eq!(
        node.call("/caps/kv/data/swapped").await,
        (200, swaps.to_string())
    );
}

/// A deterministic shuffle, so increments and swaps interleave.
fn shuffle<T>(v: &mut [T]) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// The KV counter examples in all three languages, under parallel load.
#[tokio::test(flavor = "multi_thread")]
async fn the_counter_examples_count_every_request() {
    let node = Node::start_with_args(&["--compiler", "winch"]);
    let admin = node.admin();
    let examples = [
        ("counter", guest("counter"), "examples/counter"),
        (
            "counter-py",
            built("examples/counter-python", "counter-py"),
            "examples/counter-python",
        ),
        (
            "counter-js",
            built("examples/counter-js", "counter-js"),
            "examples/counter-js",
        ),
    ];
    for (name, component, dir) in &examples {
        let manifest =
            std::fs::read_to_string(glint_e2e::repo_root().join(dir).join("glint.toml")).unwrap();
        admin.deploy_ok(name, &manifest, component.clone()).await;
    }
    let n = 60;
    for (name, _, _) in &examples {
        assert_eq!(
            node.call(&format!("/{name}/visits-{name}")).await,
            (200, "0\n".into()),
            "{name}"
        );
        let statuses: Vec<u16> = futures::stream::iter(0..n)
            .map(|_| {
                let node = &node;
                async move {
                    node.send(Method::POST, &format!("/{name}/visits-{name}"), Vec::new())
                        .await
                        .0
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 200), "{name}: {statuses:?}");
        assert_eq!(
            node.call(&format!("/{name}/visits-{name}")).await,
            (200, format!("{n}\n")),
            "{name}"
        );
    }
    // All three share the tenant's `counters` store: each kept its own key.
    let (_, stores) = admin.get("/api/v1/kv").await;
    assert_eq!(stores["stores"][0]["name"], "counters", "{stores}");
}

/// The per-store quota and the value limit, set on the node, hold for guests.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_quota_holds() {
    let node =
        Node::start_with_args(&["--kv-store-quota-mb", "1", "--kv-max-value-bytes", "400000"]);
    let admin = node.admin();
    admin
        .deploy_ok("caps", "[kv]\nstores = [\"data\"]\n", guest("caps"))
        .await;
    let value = vec![b'v'; 400_000];
    for key in ["a", "b"] {
        let (status, body) = node
            .send(Method::PUT, &format!("/caps/kv/data/{key}"), value.clone())
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, body) = node
        .send(Method::PUT, "/caps/kv/data/c", value.clone())
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("full") && body.contains("quota"), "{body}");
    let (status, body) = node
        .send(Method::PUT, "/caps/kv/data/d", vec![b'v'; 400_001])
        .await;
    assert!(status == 500 && body.contains("at most 400000"), "{body}");
    // Deleting makes room again.
    assert_eq!(
        node.send(Method::DELETE, "/caps/kv/data/a", Vec::new())
            .await
            .0,
        204
    );
    assert_eq!(
        node.send(Method::PUT, "/caps/kv/data/c", value).await.0,
        204
    );
    let (_, stores) = admin.get("/api/v1/kv").await;
    assert_eq!(stores["stores"][0]["keys"], 2, "{stores}");
}

/// The fetch and config examples, as their READMEs describe them.
#[tokio::test(flavor = "multi_thread")]
async fn the_fetch_and_config_examples_work() {
    let (port, hits) = upstream();
    let node = Node::start();
    let admin = node.admin();
    let root = glint_e2e::repo_root();

    // config: refused until its secret is set, then shows the secret's length only.
    let manifest = std::fs::read_to_string(root.join("examples/config/glint.toml")).unwrap();
    let (status, body) = admin.deploy("config", &manifest, guest("config")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("secret_not_set")),
        "{body}"
    );
    set_secret(&node, "API_TOKEN", "0123456789abcdef").await;
    admin.deploy_ok("config", &manifest, guest("config")).await;
    assert_eq!(
        node.call("/config").await,
        (200, "GREETING: Hello\nAPI_TOKEN: set (16 chars)\n".into())
    );

    // fetch: its own manifest allows only public hosts, so a loopback URL is denied...
    let manifest = std::fs::read_to_string(root.join("examples/fetch/glint.toml")).unwrap();
    admin.deploy_ok("fetch", &manifest, guest("fetch")).await;
    let url = pct(&format!("http://127.0.0.1:{port}/page"));
    let (status, body) = node.call(&format!("/fetch/?url={url}")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("denied"), "{body}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // ...until a manifest names that upstream exactly.
    let allowing = format!("[outbound]\nallowed_hosts = [\"http://127.0.0.1:{port}\"]\n");
    admin.deploy_ok("fetch", &allowing, guest("fetch")).await;
    assert_eq!(
        node.call(&format!("/fetch/?url={url}")).await,
        (200, "upstream says hi".into())
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// wasmtime's `wasi:keyvalue@0.2.0-draft` (a guest written for `wasmtime serve
/// -Skeyvalue`) works over the same stores as draft2: what one writes, the other reads.
#[tokio::test(flavor = "multi_thread")]
async fn wasmtimes_keyvalue_draft_shares_the_stores_of_draft2() {
    let node = Node::start();
    let admin = node.admin();
    let manifest = "[kv]\nstores = [\"shared\"]\n";
    admin
        .deploy_ok("kv-draft", manifest, guest("kv_draft"))
        .await;
    admin.deploy_ok("caps", manifest, guest("caps")).await;

    // Written through the draft, read through draft2, and back.
    let (status, body) = node
        .send(Method::PUT, "/kv-draft/shared/colour", b"teal".to_vec())
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        node.call("/caps/kv/shared/colour").await,
        (200, "teal".into())
    );
    let (status, _) = node
        .send(Method::PUT, "/caps/kv/shared/shape", b"round".to_vec())
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        node.call("/kv-draft/shared/shape").await,
        (200, "round".into())
    );
    assert_eq!(
        node.call("/kv-draft/shared/shape/exists").await,
        (200, "true".into())
    );
    let (status, _) = node
        .send(Method::DELETE, "/kv-draft/shared/shape", Vec::new())
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        node.call("/caps/kv/shared/shape").await,
        (404, "not found".into())
    );

    // One counter, counted by both drafts.
    for (path, want) in [
        ("/kv-draft/shared/hits/increment?by=5", "5"),
        ("/caps/kv/shared/hits/increment?by=2", "7"),
        ("/kv-draft/shared/hits/increment", "8"),
    ] {
        assert_eq!(
            node.send(Method::POST, path, Vec::new()).await,
            (200, want.into()),
            "{path}"
        );
    }
    // The draft counts in u64: a counter draft2 made negative is an error it can read.
    assert_eq!(
        node.send(
            Method::POST,
            "/caps/kv/shared/hits/increment?by=-10",
            Vec::new()
        )
        .await,
        (200, "-2".into())
    );
    let (status, body) = node
        .send(Method::POST, "/kv-draft/shared/hits/increment", Vec::new())
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("read it with draft2"), "{body}");

    // Batches, and list-keys page by page through the draft's numeric cursor.
    let (status, body) = node
        .send(Method::POST, "/kv-draft/shared?fill=2500", Vec::new())
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        node.call("/kv-draft/shared?get=k00007,nope").await,
        (200, "k00007=v\nnope".into())
    );
    // 2500 filled, plus colour and hits.
    assert_eq!(
        node.call("/kv-draft/shared").await,
        (200, "2502 keys in 3 pages".into())
    );
    let (status, body) = node.call("/kv-draft/shared?cursor=7").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("start again without a cursor"), "{body}");

    // A store the manifest does not list is denied, as with draft2.
    let (status, body) = node.call("/kv-draft/other/colour").await;
    assert_eq!((status, body.as_str()), (500, "kv error: access-denied"));
}
