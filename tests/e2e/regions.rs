//! Regions (issue 14, its first part): a Glint node in each of three regions, each on
//! its own region's NATS server, the regions joined by gateways over 40 ms links
//! (`SuperCluster`). The store's buckets live where the first node made them (a local
//! copy in every region comes next), so this shows what crosses regions today: a
//! deploy waits for a node in every region and says when each served it, the regions
//! list their nodes, and a KV write in one region reads in another.

use std::time::Duration;

use async_nats::jetstream;
use glint_e2e::nats::SuperCluster;
use glint_e2e::{Node, guest, wait_until};
use serde_json::Value;

const KEY: &str = "regions-test-admin-key-0123456789abcdef";
const REGIONS: [&str; 3] = ["a", "b", "c"];

/// Runs the `glint` CLI against `node`; returns whether it succeeded, stdout, stderr.
fn glint(node: &Node, args: &[&str]) -> (bool, String, String) {
    node.cli(KEY, args)
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v[field].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_in_one_region_serves_in_every_region_and_the_regions_are_listed() {
    let supercluster = SuperCluster::start(&REGIONS, Duration::from_millis(40));
    let nodes: Vec<Node> = REGIONS
        .iter()
        .map(|region| {
            let url = format!("{}?ns=glint", supercluster.region(region).url());
            let id = format!("{region}1");
            Node::start_with(
                KEY,
                &["--store", &url, "--node-id", &id, "--region", region],
            )
        })
        .collect();

    // A deploy in a returns once every region serves it, and says when each did.
    let body = nodes[0].admin().deploy_hello("hi from a").await;
    let rollout = &body["rollout"];
    assert_eq!(names(&rollout["regions"], "region"), REGIONS, "{body}");
    for region in rollout["regions"].as_array().unwrap() {
        assert!(region["after_ms"].is_i64(), "{body}");
    }
    assert_eq!(names(&rollout["ready"], "region"), REGIONS, "{body}");
    for node in &nodes {
        assert_eq!(
            node.call("/hello").await,
            (200, "hi from a from Glint!\n".into())
        );
    }

    // Every node lists the three regions, each with its node, from the heartbeats.
    let (status, listed) = nodes[2].admin().get("/api/v1/regions").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(names(&listed["regions"], "region"), REGIONS, "{listed}");
    for (region, want) in listed["regions"].as_array().unwrap().iter().zip(REGIONS) {
        assert_eq!(
            names(&region["nodes"], "id"),
            [format!("{want}1")],
            "{listed}"
        );
        assert_eq!(region["this_region"], want == "c", "{listed}");
        // a holds the origins; b and c read their own copies, and say how far behind.
        let copies = &region["copies"];
        if want == "a" {
            assert_eq!(copies, &serde_json::json!([]), "{listed}");
        } else {
            assert_eq!(
                names(copies, "of"),
                ["registry", "nodes", "artifacts"],
                "{listed}"
            );
            for copy in copies.as_array().unwrap() {
                assert!(copy["lag"].is_u64(), "{listed}");
            }
        }
    }

    // Each function's status says where it is ready: every region, from any region.
    let (status, hello) = nodes[1].admin().get("/api/v1/functions/hello/status").await;
    assert_eq!(status, 200, "{hello}");
    assert_eq!(names(&hello["regions"], "region"), REGIONS, "{hello}");
    for region in hello["regions"].as_array().unwrap() {
        assert_eq!(region["ready"], true, "{hello}");
    }

    // The CLI shows the same: `glint regions`, and `glint deploy` with each region's time.
    let (ok, out, err) = glint(&nodes[1], &["regions"]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[1].starts_with("b *") && rows[1].contains("b1"),
        "{out}"
    );
    assert!(
        rows[0].trim_end().ends_with('-'),
        "a keeps no copies: {out}"
    );
    assert!(
        rows[2].contains("registry") && rows[2].contains("behind"),
        "{out}"
    );
    let hello = glint_e2e::repo_root().join("examples/hello");
    let (ok, out, err) = glint(
        &nodes[2],
        &["deploy", hello.to_str().unwrap(), "--no-build"],
    );
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.trim_start().starts_with("regions:"));
    let line = line.unwrap_or_else(|| panic!("no regions line in {out}"));
    for region in REGIONS {
        assert!(
            line.contains(&format!("{region} ")) && line.contains(" ms"),
            "{out}"
        );
    }

    // A KV write through the counter in a reads in c.
    let manifest =
        std::fs::read_to_string(glint_e2e::repo_root().join("examples/counter/glint.toml"))
            .unwrap();
    nodes[1]
        .admin()
        .deploy_ok("counter", &manifest, guest("counter"))
        .await;
    let client = glint_e2e::http_client();
    for _ in 0..3 {
        let answer = client
            .post(format!("{}/counter/visits", nodes[0].data_url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(nodes[2].call("/counter/visits").await, (200, "3\n".into()));
}

/// A region of three servers holds the origins with three replicas (R3), the other
/// regions one copy each: one of the three servers killed, writes from another region
/// go on (after the stream's election), every call is served in b and c, and nothing
/// acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn an_origin_region_of_three_servers_loses_one_and_no_acknowledged_write() {
    let mut regions =
        SuperCluster::start_sized(&[("a", 3), ("b", 1), ("c", 1)], Duration::from_millis(40));
    let start = |region: &str, id: &str| {
        let url = format!("{}?ns=glint", regions.region(region).url());
        Node::start_with(KEY, &["--store", &url, "--node-id", id, "--region", region])
    };
    let a1 = start("a", "a1");
    let b1 = start("b", "b1");
    let c1 = start("c", "c1");
    a1.admin().deploy_counter().await;
    a1.admin().deploy_hello("hi").await;

    // Three replicas where the origins are, one copy in each other region.
    let js = |region: &str| {
        let url = regions.region(region).servers[0].url();
        async move { jetstream::new(async_nats::connect(url).await.unwrap()) }
    };
    let a = js("a").await;
    let registry = a.get_stream("KV_glint_registry").await.unwrap();
    assert_eq!(registry.cached_info().config.num_replicas, 3);
    let copy = a.get_stream("KV_glint_registry_at_b").await.unwrap();
    assert_eq!(copy.cached_info().config.num_replicas, 1);
    assert!(copy.cached_info().config.mirror.is_some());

    let client = glint_e2e::http_client();
    let increment = |node: &Node| {
        let url = format!("{}/counter/r3", node.data_url);
        let client = client.clone();
        async move {
            match client.post(url).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            }
        }
    };
    let mut acknowledged = 0;
    for _ in 0..5 {
        assert_eq!(increment(&c1).await.0, 200);
        acknowledged += 1;
    }

    // One of a's three servers dies; its streams elect new leaders among the other two.
    regions.stop_server("a", 0);
    for node in [&b1, &c1] {
        for _ in 0..50 {
            assert_eq!(node.call("/hello").await.0, 200);
        }
    }
    // Writes from c: refused (clearly) while a's streams elect, then accepted again. A
    // refused write may still have been applied, so it counts as an attempt.
    let mut attempts = acknowledged;
    wait_until(
        "c writes with one of a's servers gone",
        Duration::from_secs(60),
        || {
            attempts += 1;
            let tried = increment(&c1);
            async move {
                match tried.await {
                    (200, _) => Ok(()),
                    (status, body) => Err(format!("{status} {body}")),
                }
            }
        },
    )
    .await;
    acknowledged += 1;
    for _ in 0..5 {
        let (status, body) = increment(&c1).await;
        assert_eq!(status, 200, "{body}");
        acknowledged += 1;
        attempts += 1;
    }
    // Nothing acknowledged is lost: the origin counts every one, and b's copy the same.
    // a1's client may still be moving to one of a's two other servers: a read it cannot
    // make yet is an error, not a number, and is asked again.
    let counted: u64 = wait_until(
        "a1 reads the count with one of a's servers gone",
        Duration::from_secs(60),
        || async {
            let (status, body) = a1.call("/counter/r3").await;
            match (status, body.trim().parse()) {
                (200, Ok(n)) => Ok(n),
                _ => Err(format!("{status} {body}")),
            }
        },
    )
    .await;
    assert!(
        (acknowledged..=attempts).contains(&counted),
        "{counted} counted, {acknowledged} acknowledged of {attempts}"
    );
    let want = (200, format!("{counted}\n"));
    wait_until(
        "b's copy has every write",
        Duration::from_secs(150),
        || async {
            let got = b1.call("/counter/r3").await;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    )
    .await;
}
