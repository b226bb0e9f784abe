//! A NATS registry written before routes were per tenant, opened by this Glint: its route
//! claims (`route.<route>`) move under their tenants (`route.<tenant>.<route>`), so a
//! route stays one function's within its tenant.

use glint_e2e::nats::NatsCluster;
use glint_store::nats::{NatsStore, NatsUrl};
use glint_store::{KvLimits, NewVersion, Registry, StoreError, TenantId};

/// `/hello` as the registry's keys escape it.
const ESCAPED_ROUTE: &str = "=2Fhello";

fn version(function: &str) -> NewVersion {
    let component = b"not compiled here".to_vec();
    NewVersion {
        tenant: TenantId::default_tenant(),
        function: function.parse().unwrap(),
        route: "/hello".into(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&component)),
        component,
        manifest: String::new(),
        world: "wasi-0.2".into(),
        move_alias: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn route_claims_from_before_tenants_move_under_their_tenants() {
    let cluster = NatsCluster::start(3);
    let url = NatsUrl::parse(&format!("{}?ns=upgrade&replicas=3", cluster.url()))
        .unwrap()
        .unwrap();
    let (store, _) = NatsStore::open(&url, KvLimits::default()).await.unwrap();
    store.deploy(version("hello")).await.unwrap();

    // The claim as an older Glint wrote it: at `route.<route>`, and nowhere else.
    let client = async_nats::connect(cluster.servers[0].url()).await.unwrap();
    let registry = async_nats::jetstream::new(client)
        .get_key_value("upgrade_registry")
        .await
        .unwrap();
    let new_key = format!("route.default.{ESCAPED_ROUTE}");
    let old_key = format!("route.{ESCAPED_ROUTE}");
    let claim = registry
        .get(&new_key)
        .await
        .unwrap()
        .expect("the claim a deploy makes");
    registry.put(&old_key, claim.clone()).await.unwrap();
    registry.purge(&new_key).await.unwrap();
    assert_eq!(registry.get(&new_key).await.unwrap(), None);

    // Opened again, the store moves it.
    let (store, _) = NatsStore::open(&url, KvLimits::default()).await.unwrap();
    assert_eq!(registry.get(&new_key).await.unwrap(), Some(claim));
    assert_eq!(registry.get(&old_key).await.unwrap(), None);
    // And the route is still the function's: another of the tenant cannot take it.
    let taken = store.deploy(version("other")).await.unwrap_err();
    assert!(matches!(taken, StoreError::Conflict(_)), "{taken}");
}
