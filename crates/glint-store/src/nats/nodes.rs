//! [`Nodes`] on JetStream: heartbeats (`node.<id>`) and readiness
//! (`ready.<tenant>.<function>.<version>.<node>`) in a bucket whose entries expire after
//! [`super::NODE_TTL`], so a node that stops drops out by itself.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{NODE_TTL, NatsStore, from_json, names, scan, to_json};
use crate::model::*;
use crate::{CopyState, NodeRecord, Nodes, Result};

#[derive(Serialize, Deserialize)]
struct Ready {
    node: String,
    at_ms: i64,
}

#[async_trait]
impl Nodes for NatsStore {
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()> {
        self.nodes
            .write
            .put(names::node_key(&node.id), to_json("a heartbeat", node)?)
            .await
            .map_err(|e| self.nodes.unreachable("sending a heartbeat", e))?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let fresh = now_ms() - NODE_TTL.as_millis() as i64;
        let mut out = scan::entries(&self.client, &self.nodes.here, "node.*")
            .await?
            .iter()
            .map(|found| from_json::<NodeRecord>("a heartbeat", &found.value))
            .filter(|n| n.as_ref().map_or(true, |n| n.seen_at_ms >= fresh))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn set_ready(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
        version: VersionId,
        node: &str,
    ) -> Result<()> {
        let ready = Ready {
            node: node.to_string(),
            at_ms: now_ms(),
        };
        self.nodes
            .write
            .put(
                names::ready_key(tenant, function, version, node),
                to_json("a readiness", &ready)?,
            )
            .await
            .map_err(|e| self.nodes.unreachable("saying a version is ready", e))?;
        Ok(())
    }

    async fn ready(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
        version: VersionId,
    ) -> Result<Vec<(String, i64)>> {
        let filter = format!("ready.{tenant}.{function}.{}.*", version.0);
        scan::entries(&self.client, &self.nodes.here, &filter)
            .await?
            .iter()
            .map(|found| {
                let ready: Ready = from_json("a readiness", &found.value)?;
                Ok((ready.node, ready.at_ms))
            })
            .collect()
    }

    async fn copies(&self) -> Result<Vec<CopyState>> {
        self.region_copies().await
    }

    async fn health(&self) -> std::result::Result<(), String> {
        if !self.connected() {
            return Err(
                "not connected to NATS; serving what this node has, and reconnecting".into(),
            );
        }
        // Connected is not enough: after an outage the servers take a while to elect the
        // leaders of Glint's buckets and streams, and until then every write fails. Each
        // read below is answered by a leader.
        let checks = async {
            let registry = self.registry.here.entry("meta.ready");
            let nodes = self.nodes.here.entry("meta.ready");
            let logs = self.logs.get_info();
            let usage = self.usage.get_info();
            let (registry, nodes, logs, usage) = tokio::join!(registry, nodes, logs, usage);
            registry.map_err(|e| format!("the registry does not answer: {e}"))?;
            nodes.map_err(|e| format!("the nodes bucket does not answer: {e}"))?;
            logs.map_err(|e| format!("the logs stream does not answer: {e}"))?;
            usage.map_err(|e| format!("the usage stream does not answer: {e}"))?;
            Ok::<(), String>(())
        };
        match tokio::time::timeout(HEALTH_TIMEOUT, checks).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(format!(
                "NATS is connected but not serving yet ({why}); retrying"
            )),
            Err(_) => Err(format!(
                "NATS is connected but its JetStream did not answer within {HEALTH_TIMEOUT:?}; retrying"
            )),
        }
    }
}

impl NatsStore {
    /// Every listed region's copies of the registry, the nodes bucket and the artifacts.
    pub(crate) async fn region_copies(&self) -> Result<Vec<CopyState>> {
        let shared = [
            (
                "registry",
                format!("KV_{}", names::registry_bucket(&self.ns)),
            ),
            ("nodes", format!("KV_{}", names::nodes_bucket(&self.ns))),
            (
                "artifacts",
                format!("OBJ_{}", names::artifacts_bucket(&self.ns)),
            ),
        ];
        let regions = self.regions().await;
        let asks = regions.iter().flat_map(|r| {
            shared
                .iter()
                .map(|(of, origin)| super::copies::copy_state(&self.js, &r.region, of, origin))
        });
        Ok(futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect())
    }
}

/// How long `/readyz` waits for JetStream's answer before it says not ready.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
