//! Local copies of buckets in a supercluster (one NATS cluster per region, joined by
//! gateways). A bucket lives in one region, its origin, where every write goes, so
//! revision-checked writes stay atomic. Every other region keeps a mirror of it, made by
//! the first node that opens the bucket there, and its nodes read the mirror: reads never
//! cross a region, and a region cut off from the origin still reads what it had.
//!
//! Mirrors keep the origin's sequence numbers, so a revision read from a mirror is one
//! the origin checks. After a write, a node waits (briefly) until its mirror has the
//! write, so what a node wrote, its next read sees.
//!
//! Without a cluster name (one server), or when the origin is in this node's region,
//! `here` is the origin itself and nothing else changes.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::{backend, patiently};
use crate::{Result, StoreError};

/// How long a write waits for this region's mirror to have it.
const SETTLE: Duration = Duration::from_secs(5);
/// How long a user's store waits for its origin when this region has no copy yet.
const OPEN_PATIENCE: Duration = Duration::from_secs(4);
/// How long a write waits for an origin in another region.
const FAR_PATIENCE: Duration = Duration::from_secs(2);
/// How long a new mirror may take to copy what its origin has.
const FIRST_SYNC: Duration = Duration::from_secs(60);

/// A KV bucket as one region sees it.
#[derive(Clone)]
pub(crate) struct Bucket {
    /// Writes go through this handle to the origin (a write is a publish on the origin's
    /// subjects, which only the origin stream takes).
    pub write: kv::Store,
    /// Reads, from this region's copy.
    pub here: kv::Store,
    /// The origin's stream, for the reads a revision-checked write depends on: they go to
    /// the origin's leader. Made without asking the server anything, so a node in a
    /// cut-off region can open the bucket.
    origin: stream::Stream<()>,
    /// `here` is a mirror, not the origin.
    mirrored: bool,
    /// The region (NATS cluster) the origin is in, when known.
    pub origin_region: Option<String>,
}

/// The mirror's metadata key that names its origin's region.
const ORIGIN_KEY: &str = "glint.origin_region";

/// What to make when the bucket does not exist anywhere yet.
pub(crate) type Make = Option<stream::Config>;

/// The name of `origin_stream`'s mirror in `region`.
pub(crate) fn mirror_name(origin_stream: &str, region: &str) -> String {
    format!("{origin_stream}_at_{}", super::names::region_token(region))
}

impl Bucket {
    /// Opens the bucket `name` from this region (`region`: the NATS cluster this node's
    /// server is in). If this region has a mirror, that is all it needs, even while the
    /// origin cannot be reached. Otherwise it opens the origin, or makes it (placed in
    /// this region) from `make`, and if the origin is elsewhere it makes this region's
    /// mirror and waits for its first copy.
    pub async fn open(
        js: &jetstream::Context,
        region: Option<&str>,
        name: &str,
        replicas: usize,
        make: Make,
    ) -> Result<Bucket> {
        let origin_stream = format!("KV_{name}");
        if let Some(region) = region {
            let mirror = mirror_name(&origin_stream, region);
            if let Ok(found) = js.get_stream(&mirror).await {
                return Self::over_mirror(js, name, found).await;
            }
        }
        // Without a copy here, the origin must answer. A bucket that is only opened
        // (a user's store) waits less for it: a call is waiting.
        let patience = if make.is_some() {
            super::PATIENCE
        } else {
            OPEN_PATIENCE
        };
        let origin = super::again_while(super::transient, patience, || async {
            let asked = tokio::time::timeout(patience, js.get_stream(&origin_stream));
            match asked.await {
                Ok(Ok(found)) => Ok(Some(found)),
                Ok(Err(e)) if e.to_string().contains("not found") => Ok(None),
                Ok(Err(e)) => Err(backend(&format!("opening the bucket {name}"), e)),
                Err(_) => Err(backend(&format!("opening the bucket {name}"), "timed out")),
            }
        })
        .await
        .map_err(|e| match (region, e) {
            (Some(here), e) if super::transient(&e) => StoreError::Unavailable(format!(
                "region {here} has no copy of this bucket yet, and its origin cannot be reached now ({e}); \
                 it works again when the region that made it is back"
            )),
            (_, e) => e,
        })?;
        let origin = match (origin, make) {
            (Some(found), _) => found,
            (None, None) => {
                return Err(StoreError::NotFound(format!(
                    "the bucket {name} does not exist"
                )));
            }
            (None, Some(mut config)) => {
                config.placement = region.map(|r| stream::Placement {
                    cluster: Some(r.to_string()),
                    tags: Vec::new(),
                });
                // A cluster that just started may still be electing the leaders the new
                // stream needs: such a failure is tried again, within the patience.
                let made = super::again_while(settling, super::PATIENCE, || async {
                    match js.create_stream(config.clone()).await {
                        Ok(made) => Ok(made),
                        Err(not_made) => match js.get_stream(&origin_stream).await {
                            // Another node made it first.
                            Ok(found) => Ok(found),
                            // Made by another node a moment ago, and not set up yet on
                            // the server that answered.
                            Err(e) if e.to_string().contains("not found") => Err(backend(
                                &format!("creating the bucket {name}"),
                                format!("{not_made}; and the stream is {NOT_YET}"),
                            )),
                            // Neither made nor there: why it was not made is the error.
                            Err(_) => {
                                Err(backend(&format!("creating the bucket {name}"), not_made))
                            }
                        },
                    }
                })
                .await?;
                led(js, name, made).await?
            }
        };
        // What the server said when it made or found the stream: asking again right after
        // a create can reach a server that has not set the new stream up yet, and that
        // answers "stream not found".
        let info = origin.cached_info().clone();
        let origin_region = info.cluster.as_ref().and_then(|c| c.name.clone());
        let store = kv_over(name, &origin_stream, origin.clone());
        match region {
            Some(here) if origin_region.as_deref().is_some_and(|o| o != here) => {
                let mirror = make_mirror(js, here, &info, replicas).await?;
                let mut bucket = Self::over_mirror(js, name, mirror).await?;
                bucket.write = store;
                Ok(bucket)
            }
            _ => Ok(Bucket {
                write: store.clone(),
                here: store,
                origin: no_info(js, &origin_stream).await?,
                mirrored: false,
                origin_region,
            }),
        }
    }

    /// The bucket read from this region's `mirror` and written to its origin.
    async fn over_mirror(
        js: &jetstream::Context,
        name: &str,
        mirror: stream::Stream,
    ) -> Result<Bucket> {
        let origin_stream = format!("KV_{name}");
        Ok(Bucket {
            // The mirror's handle, but publishing to the origin's subjects.
            write: kv_over(name, &origin_stream, mirror.clone()),
            here: kv_over(name, &mirror.cached_info().config.name, mirror.clone()),
            origin: no_info(js, &origin_stream).await?,
            mirrored: true,
            origin_region: mirror
                .cached_info()
                .config
                .metadata
                .get(ORIGIN_KEY)
                .cloned(),
        })
    }
}

/// Whether making a stream failed because the cluster is not ready for it yet: busy, or
/// short of the servers its replicas need while they join (JetStream's "insufficient
/// resources", 10023), or the stream was made a moment ago and is not set up yet.
fn settling(e: &StoreError) -> bool {
    let text = e.to_string();
    super::transient(e) || text.contains("insufficient resources") || text.contains(NOT_YET)
}

/// How an error says that a stream made a moment ago is not set up yet.
const NOT_YET: &str = "not set up yet";

/// The stream `made`, once it has a leader. A stream made a moment ago has none until its
/// servers elect one, and until then a server that has not set it up yet answers
/// "stream not found" to a question about it: a node's next reads and watches would
/// fail at random. Waits for the leader within the patience.
async fn led(js: &jetstream::Context, name: &str, made: stream::Stream) -> Result<stream::Stream> {
    // One server alone, or a cluster that has elected it: nothing to wait for.
    let has_leader = |info: &stream::Info| {
        info.cluster
            .as_ref()
            .is_none_or(|c| c.leader.as_deref().is_some_and(|l| !l.is_empty()))
    };
    if has_leader(made.cached_info()) {
        return Ok(made);
    }
    let stream_name = made.cached_info().config.name.clone();
    let reading = format!("opening the bucket {name}");
    super::again_while(settling, super::PATIENCE, || async {
        match js.get_stream(&stream_name).await {
            Ok(found) if has_leader(found.cached_info()) => Ok(found),
            Ok(_) => Err(backend(&reading, format!("it has no leader, {NOT_YET}"))),
            Err(e) if e.to_string().contains("not found") => {
                Err(backend(&reading, format!("{e}: {NOT_YET}")))
            }
            Err(e) => Err(backend(&reading, e)),
        }
    })
    .await
}

/// Makes the mirror of the stream described by `info` in region `here`, and waits until
/// it has what the origin had.
pub(crate) async fn make_mirror(
    js: &jetstream::Context,
    here: &str,
    info: &stream::Info,
    replicas: usize,
) -> Result<stream::Stream> {
    let origin = &info.config;
    let name = mirror_name(&origin.name, here);
    let config = stream::Config {
        name: name.clone(),
        description: Some(format!("{}'s copy in region {here}", origin.name)),
        mirror: Some(stream::Source {
            name: origin.name.clone(),
            ..Default::default()
        }),
        max_messages_per_subject: origin.max_messages_per_subject,
        max_age: origin.max_age,
        metadata: info
            .cluster
            .as_ref()
            .and_then(|c| c.name.clone())
            .map(|r| [(ORIGIN_KEY.to_string(), r)].into())
            .unwrap_or_default(),
        allow_direct: true,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        placement: Some(stream::Placement {
            cluster: Some(here.to_string()),
            tags: Vec::new(),
        }),
        ..Default::default()
    };
    let mirror = match js.create_stream(config).await {
        Ok(made) => made,
        Err(e) => js.get_stream(&name).await.map_err(|_| {
            backend(
                &format!("making {}'s copy in region {here}", origin.name),
                e,
            )
        })?,
    };
    let wanted = info.state.last_sequence;
    let deadline = tokio::time::Instant::now() + FIRST_SYNC;
    loop {
        let copied = mirror
            .get_info()
            .await
            .map(|i| i.state.last_sequence)
            .unwrap_or(0);
        if copied >= wanted {
            return Ok(mirror);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(backend(
                &format!("copying {} to region {here}", origin.name),
                format!("the copy has {copied} of {wanted} messages after {FIRST_SYNC:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Bucket {
    /// Sends a write again while no server took it, for up to the patience of a read, but gives up
    /// sooner when the origin is in another region: out of reach is an answer.
    pub async fn send<T, F, Fut>(&self, write: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let patience = if self.mirrored {
            FAR_PATIENCE
        } else {
            super::PATIENCE
        };
        super::again_while(super::unsent, patience, write).await
    }

    /// Purges `key` with its history at the origin, sent again while no server takes it;
    /// `what` names the write in errors.
    pub async fn purge(&self, key: &str, what: &str) -> Result<()> {
        self.send(|| async {
            self.write
                .purge(key)
                .await
                .map_err(|e| self.unreachable(what, e))
        })
        .await
    }

    /// The entry at `key` in this region's copy (a delete marker too), as the copy's
    /// leader has it.
    pub async fn entry(&self, key: &str, what: &str) -> Result<Option<kv::Entry>> {
        patiently(|| async {
            leader_entry(&self.here.stream, &self.here, key)
                .await
                .map_err(|e| backend(what, e))
        })
        .await
    }

    /// The entry at `key` as the origin's leader has it: for a read that a
    /// revision-checked write depends on.
    pub async fn entry_at_origin(&self, key: &str, what: &str) -> Result<Option<kv::Entry>> {
        if !self.mirrored {
            return patiently(|| async {
                leader_entry(&self.origin, &self.write, key)
                    .await
                    .map_err(|e| backend(what, e))
            })
            .await;
        }
        // Not the patience of a read: an origin out of reach is an answer, given soon.
        super::again_while(super::transient, FAR_PATIENCE, || async {
            match tokio::time::timeout(FAR_PATIENCE, leader_entry(&self.origin, &self.write, key))
                .await
            {
                Ok(Ok(found)) => Ok(found),
                Ok(Err(e)) => Err(self.unreachable(what, e)),
                Err(_) => Err(self.unreachable(what, "timed out")),
            }
        })
        .await
    }

    /// A failed write or origin read, saying where the origin is when it cannot be reached.
    pub fn unreachable(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        let text = e.to_string();
        if self.mirrored && super::transient(&StoreError::Backend(text.clone())) {
            let region = match self.origin_region.as_deref() {
                Some(r) => format!("region {r}"),
                None => "another region".into(),
            };
            return StoreError::Unavailable(format!(
                "{what}: writes here go to {region}, which this region cannot reach now ({text}); \
                 reads are served from this region's copy, and writes work again when {region} is back"
            ));
        }
        backend(what, text)
    }

    /// Waits until this region's copy has `key` at `revision` or later, for up to
    /// [`SETTLE`]: the write was made at the origin, and the node's next read should see it.
    pub async fn settle(&self, key: &str, revision: u64) {
        if !self.mirrored {
            return;
        }
        let deadline = tokio::time::Instant::now() + SETTLE;
        let mut pause = Duration::from_millis(2);
        loop {
            let seen = match leader_entry(&self.here.stream, &self.here, key).await {
                Ok(Some(e)) => e.revision,
                _ => 0,
            };
            if seen >= revision {
                return;
            }
            if tokio::time::Instant::now() + pause > deadline {
                tracing::warn!(
                    key,
                    revision,
                    "this region's copy has not caught up with a write after {SETTLE:?}"
                );
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

/// `region`'s copy of `origin_stream` (what it copies: `of`), as JetStream reports it;
/// `None` when the region has no copy (the origin is there, or no node of it started).
pub(crate) async fn copy_state(
    js: &jetstream::Context,
    region: &str,
    of: &str,
    origin_stream: &str,
) -> Option<crate::CopyState> {
    let mut state = crate::CopyState {
        region: region.to_string(),
        of: of.to_string(),
        lag: None,
        active_ms_ago: None,
        error: None,
    };
    let name = mirror_name(origin_stream, region);
    match tokio::time::timeout(super::logs::FAR_READ, js.get_stream(&name)).await {
        Ok(Ok(stream)) => {
            let mirror = stream.cached_info().mirror.clone()?;
            state.lag = Some(mirror.lag);
            state.active_ms_ago = mirror.active.map(|d| d.as_millis() as u64);
        }
        Ok(Err(e)) if e.to_string().contains("not found") => return None,
        Ok(Err(e)) => state.error = Some(e.to_string()),
        Err(_) => state.error = Some("its region did not answer".into()),
    }
    Some(state)
}

/// A handle on the stream `name` for requests, made without asking the server.
async fn no_info(js: &jetstream::Context, name: &str) -> Result<stream::Stream<()>> {
    js.get_stream_no_info(name)
        .await
        .map_err(|e| backend(&format!("naming the stream {name}"), e))
}

/// A KV handle for bucket `name` whose reads go to `stream` (named `stream_name`) and
/// whose writes go to the bucket's own subjects.
fn kv_over(name: &str, stream_name: &str, stream: stream::Stream) -> kv::Store {
    kv::Store {
        name: name.to_string(),
        stream_name: stream_name.to_string(),
        prefix: format!("$KV.{name}."),
        put_prefix: None,
        use_jetstream_prefix: false,
        stream,
    }
}

/// The last message on `key` of the bucket `kv` in `stream`, from the stream's leader,
/// which has applied every write acknowledged before. Not a direct get: any replica
/// answers one, and a follower may not have applied the latest write yet (a counter
/// read just after its increment could be one short).
async fn leader_entry<I>(
    stream: &stream::Stream<I>,
    kv: &kv::Store,
    key: &str,
) -> std::result::Result<Option<kv::Entry>, stream::LastRawMessageError> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind as Kind;
    let subject = format!("{}{key}", kv.prefix);
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(message) => Ok(Some(entry_of(&kv.name, key, message))),
        Err(e) if e.kind() == Kind::NoMessageFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A KV entry from a raw stream message.
fn entry_of(
    bucket: &str,
    key: &str,
    message: async_nats::jetstream::message::StreamMessage,
) -> kv::Entry {
    let operation = match message.headers.get("KV-Operation").map(|v| v.as_str()) {
        Some("DEL") => kv::Operation::Delete,
        Some("PURGE") => kv::Operation::Purge,
        _ => kv::Operation::Put,
    };
    kv::Entry {
        bucket: bucket.to_string(),
        key: key.to_string(),
        value: message.payload,
        revision: message.sequence,
        delta: 0,
        created: message.time,
        operation,
        seen_current: false,
    }
}
