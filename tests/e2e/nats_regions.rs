//! The region harness (issue 14): three one-server NATS regions joined by gateways, each
//! link through the tests' own delaying proxy. A stream placed in one region and a mirror
//! of it in another replicate across the 40 ms links; a partition leaves the mirror
//! answering reads while a write to the cut-off origin fails instead of hanging; the
//! links heal by themselves.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use glint_e2e::nats::SuperCluster;

fn placed_in(region: &str) -> Option<stream::Placement> {
    Some(stream::Placement {
        cluster: Some(region.to_string()),
        tags: vec![],
    })
}

/// Runs `check` every 50 ms until it is true, for up to 30 s; false if it never was.
async fn within_30s<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_in_another_region_replicates_serves_reads_when_cut_off_and_heals() {
    let regions = SuperCluster::start(&["a", "b", "c"], Duration::from_millis(40));
    let a = jetstream::new(
        async_nats::connect(regions.region("a").url())
            .await
            .unwrap(),
    );
    let c = jetstream::new(
        async_nats::connect(regions.region("c").url())
            .await
            .unwrap(),
    );

    a.create_stream(stream::Config {
        name: "ORIGIN".into(),
        subjects: vec!["origin.>".into()],
        placement: placed_in("a"),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    // Made from region c: the request crosses the gateways to the meta leader.
    c.create_stream(stream::Config {
        name: "COPY".into(),
        mirror: Some(stream::Source {
            name: "ORIGIN".into(),
            ..Default::default()
        }),
        placement: placed_in("c"),
        allow_direct: true,
        mirror_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let origin = a.get_stream("ORIGIN").await.unwrap();
    assert_eq!(
        origin
            .cached_info()
            .cluster
            .as_ref()
            .and_then(|c| c.name.as_deref()),
        Some("a")
    );

    // A write at the origin reaches the mirror in c.
    a.publish("origin.x", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut copy = c.get_stream("COPY").await.unwrap();
    assert_eq!(
        copy.cached_info()
            .cluster
            .as_ref()
            .and_then(|c| c.name.as_deref()),
        Some("c")
    );
    assert!(
        within_30s(|| {
            let copy = copy.clone();
            async move { copy.direct_get_last_for_subject("origin.x").await.is_ok() }
        })
        .await,
        "the write in a never reached the mirror in c"
    );
    // A write sent from c goes to the origin, and comes back to c's mirror.
    c.publish("origin.y", "2".into())
        .await
        .unwrap()
        .await
        .unwrap();

    // Region a cut off: c's mirror still answers, and a write to a's stream fails.
    regions.partition("a");
    let failed = within_30s(|| {
        let c = c.clone();
        async move {
            let sent = tokio::time::timeout(Duration::from_secs(10), async {
                c.publish("origin.z", "3".into())
                    .await?
                    .await
                    .map(drop)
                    .map_err(Into::into)
            })
            .await;
            match sent {
                Ok(Ok(())) => false,
                Ok(Err::<(), Box<dyn std::error::Error + Send + Sync>>(_)) => true,
                Err(_) => panic!("a write to the cut-off origin hung for 10 s"),
            }
        }
    })
    .await;
    assert!(failed, "writes to the cut-off origin kept succeeding");
    let read = copy.direct_get_last_for_subject("origin.x").await.unwrap();
    assert_eq!(&read.payload[..], b"1");

    // Healed: the gateways come back by themselves, and writes from c reach a again.
    regions.heal();
    for i in 0..regions.regions.len() {
        regions.wait_ready(i);
    }
    let delivered = within_30s(|| {
        let c = c.clone();
        async move {
            matches!(
                tokio::time::timeout(Duration::from_secs(10), async {
                    c.publish("origin.w", "4".into()).await.ok()?.await.ok()
                })
                .await,
                Ok(Some(_))
            )
        }
    })
    .await;
    assert!(delivered, "writes from c never reached a after the heal");
    assert!(
        within_30s(|| {
            let copy = copy.clone();
            async move {
                copy.direct_get_last_for_subject("origin.w")
                    .await
                    .is_ok_and(|m| &m.payload[..] == b"4")
            }
        })
        .await,
        "the mirror in c did not catch up after the heal"
    );
    let info = copy.info().await.unwrap();
    let mirror = info.mirror.as_ref().expect("COPY is a mirror");
    assert_eq!(mirror.name, "ORIGIN");
    // x, y, w at least; z only if a took it before the cut was seen.
    assert!(info.state.messages >= 3, "{:?}", info.state);
}
