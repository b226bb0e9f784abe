//! Regions (issue 14, its first part): a Glint node in each of three regions, each on
//! its own region's NATS server, the regions joined by gateways over 40 ms links
//! (`SuperCluster`). The store's buckets live where the first node made them (a local
//! copy in every region comes next), so this shows what crosses regions today: a
//! deploy waits for a node in every region and says when each served it, the regions
//! list their nodes, and a KV write in one region reads in another.

use std::time::Duration;

use glint_e2e::nats::SuperCluster;
use glint_e2e::{Node, guest};
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
            let url = format!("{}?ns=glint", supercluster.region(region).server.url());
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
