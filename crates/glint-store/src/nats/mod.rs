//! The NATS JetStream backend (`nats://HOST:PORT[,HOST:PORT...]`), for many nodes that
//! share one store. Work in progress: users' KV stores ([`NatsKv`]) come first; the plan
//! for the rest is `docs/plans/nats.md`.

mod kv;
mod names;

pub use kv::NatsKv;

use crate::{Result, StoreError};

/// Connects to the servers of `url` (`nats://a:4222,b:4222`).
pub async fn connect(url: &str) -> Result<async_nats::Client> {
    let servers: Vec<String> = url
        .strip_prefix("nats://")
        .ok_or_else(|| StoreError::Invalid(format!("'{url}' is not a nats:// URL")))?
        .split(',')
        .map(|host| format!("nats://{host}"))
        .collect();
    async_nats::ConnectOptions::new()
        .name("glint")
        .connect(servers)
        .await
        .map_err(|e| StoreError::Backend(format!("cannot connect to NATS at {url}: {e}")))
}

/// A NATS error as the storage traits report it: the detail is for the node's log.
fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("NATS: {what}: {e}"))
}
