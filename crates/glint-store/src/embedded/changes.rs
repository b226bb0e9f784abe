//! [`Changes`] and [`Nodes`] for a node that runs alone: its own writes are the only
//! changes, and it is the only node, so both live in memory.

use std::collections::HashMap;

use async_trait::async_trait;

use super::EmbeddedStore;
use crate::model::*;
use crate::{Change, Changes, NodeRecord, Nodes, Result};

/// The nodes on this store (one) and the versions each serves.
#[derive(Default)]
pub(super) struct Membership {
    nodes: HashMap<String, NodeRecord>,
    ready: HashMap<(TenantId, FunctionName, VersionId), Vec<(String, i64)>>,
}

impl EmbeddedStore {
    /// Tells the change feed's listeners; none listening is fine.
    pub(super) fn changed(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    pub(super) fn changed_function(&self, tenant: &TenantId, name: &FunctionName) {
        self.changed(Change::Function {
            tenant: tenant.clone(),
            name: name.clone(),
        });
    }
}

#[async_trait]
impl Changes for EmbeddedStore {
    async fn changes(&self) -> Result<tokio::sync::mpsc::Receiver<Change>> {
        let mut feed = self.changes.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let change = match feed.recv().await {
                    Ok(change) => change,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Change::Reset,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

#[async_trait]
impl Nodes for EmbeddedStore {
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()> {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.nodes.insert(node.id.clone(), node.clone());
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<NodeRecord> = members.nodes.values().cloned().collect();
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
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let ready = members
            .ready
            .entry((tenant.clone(), function.clone(), version))
            .or_default();
        ready.retain(|(n, _)| n != node);
        ready.push((node.to_string(), now_ms()));
        Ok(())
    }

    async fn ready(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
        version: VersionId,
    ) -> Result<Vec<(String, i64)>> {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        Ok(members
            .ready
            .get(&(tenant.clone(), function.clone(), version))
            .cloned()
            .unwrap_or_default())
    }

    async fn health(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}
