//! The NATS cluster the JetStream backend's tests run on: three real nats-server
//! processes on loopback, each with JetStream fsyncing every write. This checks the
//! harness itself: the cluster forms, keeps a JetStream quorum with one server killed,
//! and takes the server back on its old ports and data.

use glint_e2e::nats::NatsCluster;

/// The server's own view of JetStream, from its monitoring endpoint.
async fn jsz(monitor_port: u16) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{monitor_port}/jsz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn healthy(monitor_port: u16) -> bool {
    match reqwest::get(format!("http://127.0.0.1:{monitor_port}/healthz")).await {
        Ok(resp) => resp.status() == 200,
        Err(_) => false,
    }
}

/// Waits, up to 30 s, until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what} within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_servers_form_a_cluster_that_survives_losing_one() {
    let mut cluster = NatsCluster::start(3);
    let url = cluster.url();
    assert_eq!(url.matches("127.0.0.1:").count(), 3, "{url}");

    for server in &cluster.servers {
        let js = jsz(server.monitor_port).await;
        let meta = &js["meta_cluster"];
        assert_eq!(meta["cluster_size"], 3, "{}: {js}", server.name);
        assert!(
            meta["leader"].as_str().is_some_and(|l| !l.is_empty()),
            "{}: {js}",
            server.name
        );
        // Every write is fsynced before it is acknowledged (the Jepsen finding).
        assert_eq!(js["config"]["sync_always"], true, "{}: {js}", server.name);
    }

    cluster.kill9(0);
    let (one, two) = (
        cluster.servers[1].monitor_port,
        cluster.servers[2].monitor_port,
    );
    assert!(!healthy(cluster.servers[0].monitor_port).await);
    eventually("the two left keep a meta leader", async || {
        let (a, b) = (jsz(one).await, jsz(two).await);
        let leader =
            |v: &serde_json::Value| v["meta_cluster"]["leader"].as_str().map(str::to_string);
        healthy(one).await && healthy(two).await && leader(&a).is_some() && leader(&a) == leader(&b)
    })
    .await;

    cluster.restart(0);
    assert!(healthy(cluster.servers[0].monitor_port).await);
}
