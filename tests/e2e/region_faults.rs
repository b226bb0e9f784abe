//! Regions under faults (issue 14): three one-server NATS regions over 40 ms links, a
//! Glint node in each. The first node makes the registry, the components and the
//! `counters` KV store in region a, their origin; b and c read their own copies.
//!
//! - Region b or c cut off: a deploy in a says which region did not serve it in time.
//! - Region a cut off (a partition): b and c serve every call and KV read; a KV write
//!   from c fails at once with an error naming region a; a keeps writing to its own
//!   origin; a node started in b while a is cut off serves everything deployed before.
//!   After the heal, c sees every write a acknowledged, and writes again.
//! - Region a lost (its server killed with its node): the same; when its server comes
//!   back, writes from c work again with no manual step.
//! - Logs and usage of every region are read from any region, each line tagged.

use std::time::{Duration, Instant};

use glint_e2e::nats::SuperCluster;
use glint_e2e::{Node, wait_until};

const KEY: &str = "region-faults-admin-key-0123456789abcdef";
/// What a call that hangs is given before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(HANG).build().unwrap()
}

fn start_node(regions: &SuperCluster, region: &str, id: &str) -> Node {
    let url = format!("{}?ns=glint", regions.region(region).url());
    Node::start_with(KEY, &["--store", &url, "--node-id", id, "--region", region])
}

/// `count` GETs of `path`; the statuses that were not 200, with their bodies.
async fn failures(node: &Node, path: &str, count: usize) -> Vec<String> {
    let client = client();
    let mut out = Vec::new();
    for _ in 0..count {
        match client.get(format!("{}{path}", node.data_url)).send().await {
            Ok(r) if r.status() == 200 => {}
            Ok(r) => out.push(format!(
                "{}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => out.push(e.to_string()),
        }
    }
    out
}

/// A POST to the counter: status, body, and how long it took.
async fn increment(node: &Node, key: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let answer = client()
        .post(format!("{}/counter/{key}", node.data_url))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "a KV write on {} hung or failed after {:?}: {e}",
                node.data_url,
                started.elapsed()
            )
        });
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap(), started.elapsed())
}

/// Waits until an increment on `node` succeeds again.
async fn writes_again(node: &Node, limit: Duration) {
    let what = format!("{} writes again", node.data_url);
    wait_until(&what, limit, || async {
        match increment(node, "hits").await {
            (200, body, _) => Ok(body),
            (status, body, _) => Err(format!("{status} {body}")),
        }
    })
    .await;
}

/// How long a region's copy may take to catch up after a heal: JetStream retries a
/// mirror that lost its origin with a backoff that grows to 2 minutes.
const CATCH_UP: Duration = Duration::from_secs(150);

/// Waits until `node` reads `want` from the counter `key`.
async fn reads(node: &Node, key: &str, want: &str) {
    let what = format!("{} reads {want} from counter {key}", node.data_url);
    wait_until(&what, CATCH_UP, || async {
        let got = node.call(&format!("/counter/{key}")).await;
        if got == (200, format!("{want}\n")) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_serve_through_a_partition_and_the_loss_of_the_origin_region() {
    let mut regions = SuperCluster::start(&["a", "b", "c"], Duration::from_millis(40));
    let mut a1 = start_node(&regions, "a", "a1");
    let b1 = start_node(&regions, "b", "b1");
    let c1 = start_node(&regions, "c", "c1");
    eprintln!(
        "nodes: a1 {}, b1 {}, c1 {}",
        a1.data_url, b1.data_url, c1.data_url
    );
    a1.admin().deploy_hello("hi").await;
    a1.admin().deploy_counter().await;
    for want in ["1", "2", "3"] {
        let (status, body, _) = increment(&a1, "hits").await;
        assert_eq!((status, body.trim()), (200, want));
    }
    reads(&c1, "hits", "3").await;

    // Logs and usage: every region's, read from c, each line with its region.
    for node in [&a1, &b1, &c1] {
        assert!(failures(node, "/hello", 2).await.is_empty());
    }
    wait_until(
        "c reads the logs of every region",
        Duration::from_secs(30),
        || async {
            let lines = c1.admin().logs("hello", "lines=100").await;
            let mut seen: Vec<String> = lines
                .iter()
                .filter(|l| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("hello: GET"))
                })
                .map(|l| l["region"].as_str().unwrap_or_default().to_string())
                .collect();
            seen.sort();
            seen.dedup();
            if seen == ["a", "b", "c"] {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await;
    wait_until(
        "c counts the calls of every region",
        Duration::from_secs(30),
        || async {
            let (status, usage) = c1.admin().get("/api/v1/usage?function=hello").await;
            let requests = usage["totals"]["requests"].as_u64().unwrap_or(0);
            // Each region's rows, tagged with it: two calls in each.
            let per_region = |want: &str| {
                usage["regions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["region"] == want)
                    .and_then(|r| r["totals"]["requests"].as_u64())
                    .unwrap_or(0)
            };
            let every = ["a", "b", "c"].iter().all(|r| per_region(r) >= 2);
            if status == 200 && requests >= 6 && every {
                Ok(())
            } else {
                Err(format!("{status} {usage}"))
            }
        },
    )
    .await;

    // With b or c cut off, a deploy in a is stored, and `glint deploy` names the region that
    // did not serve it in time.
    // The region cut off is not the meta leader's, so no election slows the deploy
    // while the cut-off node is still among the live ones.
    let leader = regions.meta_leader("a");
    let far = if leader.as_deref() == Some("c") {
        "b"
    } else {
        "c"
    };
    regions.partition(far);
    let hello = glint_e2e::repo_root().join("examples/hello");
    let deploy = [
        "deploy",
        hello.to_str().unwrap(),
        "--no-build",
        "--timeout",
        "3s",
    ];
    let (ok, out, err) = a1.cli(KEY, &deploy);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("region(s) {far} did not serve it")),
        "{err}"
    );
    regions.heal();

    // Partition: region a, the origin of everything, is cut off.
    regions.partition("a");
    for node in [&b1, &c1] {
        let failed = failures(node, "/hello", 50).await;
        assert!(
            failed.is_empty(),
            "{} failed calls: {failed:?}",
            node.data_url
        );
    }
    assert_eq!(c1.call("/counter/hits").await, (200, "3\n".into()));
    let (status, body, _) = increment(&c1, "hits").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("region a"),
        "the error names the origin: {body}"
    );
    // Region a still writes to its own origin, cut off or not.
    for want in ["4", "5"] {
        let (status, body, _) = increment(&a1, "hits").await;
        assert_eq!((status, body.trim()), (200, want));
    }
    // A deploy in the cut-off origin region is either stored there, with `glint deploy`
    // naming the regions it cannot reach, or refused as cut off when it needs
    // JetStream's meta leader; never an unexplained failure.
    let (ok, _, err) = a1.cli(KEY, &deploy);
    assert!(!ok);
    assert!(
        err.contains("region(s) b, c did not serve it") || err.contains("cut off from the others"),
        "{err}"
    );
    assert!(!err.contains("incident"), "{err}");
    // A node started in b now, with a out of reach, serves what was deployed before.
    let b2 = start_node(&regions, "b", "b2");
    assert!(failures(&b2, "/hello", 20).await.is_empty());
    assert_eq!(b2.call("/counter/hits").await, (200, "3\n".into()));

    // Healed: c sees every write a acknowledged, and writes again.
    regions.heal();
    reads(&c1, "hits", "5").await;
    writes_again(&c1, Duration::from_secs(30)).await;
    reads(&b2, "hits", "6").await;

    // Region loss: a's server and node stop.
    a1.kill9();
    regions.stop("a");
    for node in [&b1, &c1, &b2] {
        let failed = failures(node, "/hello", 50).await;
        assert!(
            failed.is_empty(),
            "{} failed calls: {failed:?}",
            node.data_url
        );
    }
    assert_eq!(c1.call("/counter/hits").await, (200, "6\n".into()));
    let (status, body, _) = increment(&c1, "hits").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("region a"),
        "the error names the origin: {body}"
    );

    // a comes back: writes from c work again, by themselves.
    regions.restart("a");
    writes_again(&c1, Duration::from_secs(60)).await;
    reads(&b1, "hits", "7").await;
}
