//! Users' KV stores on the NATS JetStream backend, on a real 3-server cluster: the same
//! answers as the embedded backend, and `increment` atomic across clients.

use std::sync::Arc;

use glint_e2e::nats::NatsCluster;
use glint_store::nats::{NatsKv, NatsStore, NatsUrl};
use glint_store::{KeyValue, KvLimits, KvStoreName, StoreError, TenantId};

/// The KV stores of a new connection to the cluster.
async fn kv(cluster: &NatsCluster, limits: KvLimits) -> NatsKv {
    let url = NatsUrl::parse(&format!("{}?ns=glinttest&replicas=3", cluster.url()))
        .unwrap()
        .unwrap();
    NatsStore::open(&url, limits).await.unwrap().1
}

fn names() -> (TenantId, KvStoreName) {
    ("acme".parse().unwrap(), "counters".parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_values_versions_and_pages() {
    let cluster = NatsCluster::start(3);
    let kv = kv(&cluster, KvLimits::default()).await;
    let (t, s) = names();

    let missing = kv.get(&t, &s, "a").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    kv.create_store(&t, &s).await.unwrap();
    kv.create_store(&t, &s).await.unwrap(); // twice is fine

    assert_eq!(kv.get(&t, &s, "a").await.unwrap(), None);
    kv.set(&t, &s, "a", b"1".to_vec()).await.unwrap();
    kv.set(&t, &s, "with space/and.dots", b"x".to_vec())
        .await
        .unwrap();
    let a = kv.get(&t, &s, "a").await.unwrap().unwrap();
    assert_eq!(a.value, b"1");

    // Compare-and-swap against the version read; a stale version loses and sees the new.
    assert_eq!(
        kv.swap(&t, &s, "a", Some(a.version), b"2".to_vec())
            .await
            .unwrap(),
        Ok(())
    );
    let stale = kv
        .swap(&t, &s, "a", Some(a.version), b"3".to_vec())
        .await
        .unwrap();
    assert_eq!(stale.unwrap_err().unwrap().value, b"2");
    assert!(
        kv.swap(&t, &s, "new", None, b"n".to_vec())
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        kv.swap(&t, &s, "new", None, b"m".to_vec())
            .await
            .unwrap()
            .is_err()
    );

    // A handle from before a delete never matches the key written again.
    let before = kv.get(&t, &s, "new").await.unwrap().unwrap();
    kv.delete(&t, &s, "new").await.unwrap();
    assert_eq!(kv.get(&t, &s, "new").await.unwrap(), None);
    kv.set(&t, &s, "new", b"n".to_vec()).await.unwrap();
    let again = kv
        .swap(&t, &s, "new", Some(before.version), b"z".to_vec())
        .await
        .unwrap();
    assert!(again.is_err());

    let bad = kv
        .increment(&t, &s, "with space/and.dots", 1)
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not a decimal integer"), "{bad}");

    let page = kv.list_keys(&t, &s, None, None, 2).await.unwrap();
    assert_eq!(page.keys, ["a", "new"]);
    let rest = kv
        .list_keys(&t, &s, None, page.cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(rest.keys, ["with space/and.dots"]);
    assert_eq!(rest.cursor, None);
    let prefixed = kv.list_keys(&t, &s, Some("wi"), None, 10).await.unwrap();
    assert_eq!(prefixed.keys, ["with space/and.dots"]);

    let stores = kv.stores(&t).await.unwrap();
    assert_eq!(stores.len(), 1);
    assert_eq!((stores[0].name.as_str(), stores[0].keys), ("counters", 3));
    let other: TenantId = "other".parse().unwrap();
    assert!(kv.stores(&other).await.unwrap().is_empty());
    assert!(matches!(
        kv.get(&other, &s, "a").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn increments_from_three_clients_lose_no_count() {
    let cluster = NatsCluster::start(3);
    let (t, s) = names();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Arc::new(kv(&cluster, KvLimits::default()).await));
    }
    clients[0].create_store(&t, &s).await.unwrap();
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..4 {
            let (client, t, s) = (client.clone(), t.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..25 {
                    client.increment(&t, &s, "hits", 1).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = clients[1].get(&t, &s, "hits").await.unwrap().unwrap();
    assert_eq!(total.value, b"300");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_hold_with_the_embedded_words() {
    let cluster = NatsCluster::start(3);
    let limits = KvLimits {
        max_key_bytes: 8,
        max_value_bytes: 64,
        store_quota_bytes: 4096,
        max_batch: 2,
    };
    let kv = kv(&cluster, limits).await;
    let (t, s) = names();
    kv.create_store(&t, &s).await.unwrap();
    let long = kv.set(&t, &s, "a-long-key", vec![]).await.unwrap_err();
    assert!(
        long.to_string().contains("keys may be at most 8 bytes"),
        "{long}"
    );
    let big = kv.set(&t, &s, "k", vec![0; 65]).await.unwrap_err();
    assert!(
        big.to_string().contains("values may be at most 64 bytes"),
        "{big}"
    );
    let batch = kv
        .get_many(&t, &s, vec!["a".into(), "b".into(), "c".into()])
        .await
        .unwrap_err();
    assert!(batch.to_string().contains("at most 2"), "{batch}");
    let mut full = None;
    for i in 0..200 {
        if let Err(e) = kv.set(&t, &s, &format!("k{i}"), vec![7; 64]).await {
            full = Some(e);
            break;
        }
    }
    let full = full.expect("the quota of 4096 bytes stops 200 values of 64 bytes");
    assert!(matches!(full, StoreError::Limit(_)), "{full}");
    assert!(full.to_string().contains("is full"), "{full}");
}
