//! [`Changes`] on JetStream: a watch on the registry bucket. Every write to a function's
//! document, a key or a secret, made by any node, arrives here as a [`Change`].

use async_nats::jetstream::kv;
use async_trait::async_trait;
use futures_util::StreamExt;

use super::NatsStore;
use crate::model::*;
use crate::{Change, Changes, Result};

/// What a registry key's change means to a node; `None` for keys no node acts on
/// (route claims).
fn change_of(key: &str) -> Option<Change> {
    let mut parts = key.splitn(3, '.');
    let kind = parts.next()?;
    let tenant = parts.next().and_then(|t| t.parse::<TenantId>().ok());
    match kind {
        "fn" => Some(Change::Function {
            tenant: tenant?,
            name: parts.next()?.parse().ok()?,
        }),
        "secret" => Some(Change::Secrets { tenant: tenant? }),
        "apikey" => Some(Change::Keys),
        "tenant" => Some(Change::Tenant { tenant: tenant? }),
        _ => None,
    }
}

#[async_trait]
impl Changes for NatsStore {
    async fn changes(&self) -> Result<tokio::sync::mpsc::Receiver<Change>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        // This region's copy: its changes arrive without crossing a region.
        let bucket = self.registry.here.clone();
        // A watch needs a consumer, which a region cut off from JetStream's meta leader
        // cannot make; the node then starts on what its copy has, and the watch starts
        // (with a reset, so nothing is missed) once it can.
        let first = match bucket.watch_all().await {
            Ok(watch) => Some(watch),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the registry yet; serving what this region has, and trying again");
                None
            }
        };
        tokio::spawn(follow(bucket, first, tx));
        Ok(rx)
    }
}

/// Forwards the watch's entries until the node stops listening. When the watch fails,
/// it starts again after the last revision seen, so no change is lost: a key written
/// since then arrives with its newest value.
async fn follow(
    bucket: kv::Store,
    first: Option<kv::Watch>,
    tx: tokio::sync::mpsc::Sender<Change>,
) {
    let mut last = 0u64;
    let mut watch = first;
    loop {
        if let Some(mut watch) = watch.take() {
            while let Some(entry) = watch.next().await {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        tracing::warn!(error = %e, "the registry watch failed; starting it again");
                        break;
                    }
                };
                last = last.max(entry.revision);
                if let Some(change) = change_of(&entry.key)
                    && tx.send(change).await.is_err()
                {
                    return;
                }
            }
        }
        // Ended or failed: start again, once NATS answers.
        loop {
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let again = if last == 0 {
                bucket.watch_all().await
            } else {
                bucket.watch_all_from_revision(last + 1).await
            };
            match again {
                Ok(w) => {
                    watch = Some(w);
                    if last == 0 && tx.send(Change::Reset).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "the registry watch cannot start yet"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys_map_to_changes() {
        assert_eq!(
            change_of("fn.acme.hello"),
            Some(Change::Function {
                tenant: "acme".parse().unwrap(),
                name: "hello".parse().unwrap()
            })
        );
        assert_eq!(
            change_of("secret.acme.TOKEN"),
            Some(Change::Secrets {
                tenant: "acme".parse().unwrap()
            })
        );
        assert_eq!(change_of("apikey.acme.key_1"), Some(Change::Keys));
        assert_eq!(change_of("route.=2Fhello"), None);
        assert_eq!(change_of("fn.acme"), None);
    }
}
