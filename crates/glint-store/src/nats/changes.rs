//! [`Changes`] on JetStream: a watch on the registry bucket. Every write to a function's
//! document, a key or a secret, made by any node, arrives here as a [`Change`].

use async_nats::jetstream::kv;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

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
        let first = match start(&bucket, None).await {
            Ok(first) => Some(first),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the registry yet; serving what this region has, and trying again");
                None
            }
        };
        tokio::spawn(follow(bucket, first, tx));
        Ok(rx)
    }
}

/// A registry entry's key and revision, as a watch delivers them.
type Entries = BoxStream<'static, Result<(String, u64)>>;

/// What the change feed needs of the registry: its newest revision, and its changes
/// after a revision. (A trait, so that the feed's recovery is tested without NATS.)
#[async_trait]
trait Watched: Send + Sync + 'static {
    async fn newest(&self) -> Result<u64>;
    async fn watch_after(&self, revision: u64) -> Result<Entries>;
}

#[async_trait]
impl Watched for kv::Store {
    /// The stream's last sequence.
    async fn newest(&self) -> Result<u64> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| super::backend("reading the registry's last revision", e))?;
        Ok(info.state.last_sequence)
    }

    async fn watch_after(&self, revision: u64) -> Result<Entries> {
        let watch = self
            .watch_all_from_revision(revision + 1)
            .await
            .map_err(|e| super::backend("watching the registry", e))?;
        Ok(watch
            .map(|entry| {
                entry
                    .map(|e| (e.key, e.revision))
                    .map_err(|e| super::backend("watching the registry", e))
            })
            .boxed())
    }
}

/// How long a watch may stay silent before the node asks whether the registry has
/// changes it has not seen.
const WATCH_CHECK: Duration = Duration::from_secs(5);

/// Starts a watch of every change after revision `last`, or (`None`) after the
/// registry's newest revision now; returns it with the revision it starts after.
async fn start(registry: &impl Watched, last: Option<u64>) -> Result<(Entries, u64)> {
    let after = match last {
        Some(last) => last,
        None => registry.newest().await?,
    };
    Ok((registry.watch_after(after).await?, after))
}

/// Forwards the watch's entries until the node stops listening. When the watch fails,
/// or stays silent while the registry has changes it has not delivered, it starts
/// again after the last revision seen, so no change is lost: a key written since then
/// arrives with its newest value.
///
/// The silent case is real: when the server that held the watch's consumer dies, the
/// client makes the consumer again, and has been seen to wait for that without end
/// (the cluster answered none of its requests for the same consumer), saying nothing.
async fn follow(
    registry: impl Watched,
    first: Option<(Entries, u64)>,
    tx: tokio::sync::mpsc::Sender<Change>,
) {
    let mut started = first;
    let mut last: Option<u64> = started.as_ref().map(|(_, after)| *after);
    loop {
        if let Some((mut watch, _)) = started.take() {
            // The revision the node had when the registry was first seen ahead of it.
            let mut behind_at: Option<u64> = None;
            loop {
                let (key, revision) = match tokio::time::timeout(WATCH_CHECK, watch.next()).await {
                    Ok(Some(Ok(entry))) => entry,
                    Ok(Some(Err(e))) => {
                        tracing::warn!(error = %e, "the registry watch failed; starting it again");
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        let seen = last.unwrap_or(0);
                        match registry.newest().await {
                            // Ahead at two checks in a row with nothing delivered between.
                            Ok(newest) if newest > seen && behind_at == Some(seen) => {
                                tracing::warn!(
                                    seen,
                                    newest,
                                    "the registry watch delivers nothing while the registry has newer changes; starting it again"
                                );
                                break;
                            }
                            Ok(newest) => behind_at = (newest > seen).then_some(seen),
                            Err(e) => {
                                tracing::debug!(error = %e, "cannot check the registry watch")
                            }
                        }
                        continue;
                    }
                };
                last = Some(last.unwrap_or(0).max(revision));
                if let Some(change) = change_of(&key)
                    && tx.send(change).await.is_err()
                {
                    return;
                }
            }
        }
        // Ended, failed or stuck: start again, once NATS answers.
        loop {
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            match start(&registry, last).await {
                Ok((watch, after)) => {
                    // A first watch that starts late may have missed changes: the node
                    // reloads everything.
                    if last.is_none() && tx.send(Change::Reset).await.is_err() {
                        return;
                    }
                    last = Some(after);
                    started = Some((watch, after));
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "the registry watch cannot start yet"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::StoreError;

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

    /// Where the live watch of a [`Fake`] gets its entries.
    type Live = tokio::sync::mpsc::UnboundedSender<Result<(String, u64)>>;

    /// A registry in memory: its writes, and the watches started on it; the first
    /// watch can be made to stay silent.
    #[derive(Clone, Default)]
    struct Fake {
        /// Every write, with its revision (1, 2, ...).
        log: Arc<Mutex<Vec<(String, u64)>>>,
        /// The revision each watch was started after.
        started: Arc<Mutex<Vec<u64>>>,
        /// The first watch delivers nothing, ever.
        first_silent: bool,
        live: Arc<Mutex<Option<Live>>>,
    }

    #[async_trait]
    impl Watched for Fake {
        async fn newest(&self) -> Result<u64> {
            Ok(self.log.lock().unwrap().len() as u64)
        }

        async fn watch_after(&self, revision: u64) -> Result<Entries> {
            let mut started = self.started.lock().unwrap();
            started.push(revision);
            if self.first_silent && started.len() == 1 {
                return Ok(futures_util::stream::pending().boxed());
            }
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            for entry in self.log.lock().unwrap().iter() {
                if entry.1 > revision {
                    tx.send(Ok(entry.clone())).unwrap();
                }
            }
            *self.live.lock().unwrap() = Some(tx);
            Ok(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|entry| (entry, rx))
            })
            .boxed())
        }
    }

    impl Fake {
        /// Writes `key` at the next revision; the live watch delivers it.
        fn write(&self, key: &str) {
            let mut log = self.log.lock().unwrap();
            let entry = (key.to_string(), log.len() as u64 + 1);
            log.push(entry.clone());
            if let Some(tx) = self.live.lock().unwrap().as_ref() {
                let _ = tx.send(Ok(entry));
            }
        }
    }

    fn hello() -> Change {
        Change::Function {
            tenant: "acme".parse().unwrap(),
            name: "hello".parse().unwrap(),
        }
    }

    /// The feed's task over `fake`, started as `changes` starts it.
    async fn feed(fake: &Fake) -> tokio::sync::mpsc::Receiver<Change> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let first = start(fake, None).await.unwrap();
        tokio::spawn(follow(fake.clone(), Some(first), tx));
        rx
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_silent_while_the_registry_moves_on_is_started_again_from_the_last_seen() {
        let fake = Fake {
            first_silent: true,
            ..Default::default()
        };
        for _ in 0..7 {
            fake.write("fn.acme.other");
        }
        let mut rx = feed(&fake).await;
        // Written while the watch says nothing.
        fake.write("fn.acme.hello");
        let got = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
        assert_eq!(got.ok().flatten(), Some(hello()));
        // Started again after the revision it had, so the write came through it.
        assert_eq!(*fake.started.lock().unwrap(), [7, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_registry_keeps_its_watch() {
        let fake = Fake::default();
        for _ in 0..3 {
            fake.write("fn.acme.other");
        }
        let mut rx = feed(&fake).await;
        // A minute with no change: the watch is kept.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(*fake.started.lock().unwrap(), [3]);
        fake.write("fn.acme.hello");
        assert_eq!(rx.recv().await, Some(hello()));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(*fake.started.lock().unwrap(), [3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_fails_is_started_again_after_the_last_change_it_delivered() {
        let fake = Fake::default();
        let mut rx = feed(&fake).await;
        fake.write("fn.acme.hello");
        assert_eq!(rx.recv().await, Some(hello()));
        let failing = fake.live.lock().unwrap().clone().unwrap();
        failing
            .send(Err(StoreError::Backend("consumer deleted".into())))
            .unwrap();
        fake.write("fn.acme.hello");
        // Sent after the error, so only the new watch, started after revision 1, can
        // deliver it.
        let got = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
        assert_eq!(got.ok().flatten(), Some(hello()));
        assert_eq!(*fake.started.lock().unwrap(), [0, 1]);
    }
}
