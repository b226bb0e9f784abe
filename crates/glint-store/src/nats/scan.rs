//! Reading many entries of a bucket at once: the last value of every key under a
//! filter, through an ordered consumer that ends when it has caught up, or by direct
//! gets where the stream allows them (a region's mirror, the nodes bucket), which need
//! no consumer and so work in a region cut off from the others.

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::{kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use super::backend;
use crate::Result;

/// A live key's last value.
pub(crate) struct Found {
    /// The key, without the bucket's subject prefix.
    pub key: String,
    pub value: Bytes,
}

/// Every live key of `bucket` matching `filter` (a subject pattern of keys, like
/// `fn.acme.*`), with its last value, in no set order. Deleted keys are left out.
pub(crate) async fn entries(
    client: &async_nats::Client,
    bucket: &kv::Store,
    filter: &str,
) -> Result<Vec<Found>> {
    let subject = format!("{}{filter}", bucket.prefix);
    if bucket.stream.cached_info().config.allow_direct {
        return super::patiently(|| direct_values(client, bucket, &subject)).await;
    }
    super::patiently(|| async {
        // A few entries (a tenant's secrets, a function's readiness) are read from the
        // stream's leader one get at a time: a consumer is made by JetStream's meta
        // leader, which may be in another region, a round trip away.
        match leader_values(&bucket.stream, &subject, &bucket.prefix).await? {
            Some(few) => Ok(few),
            None => live_values(client, &bucket.stream, &subject, &bucket.prefix).await,
        }
    })
    .await
}

/// Entries read one at a time before a scan makes a consumer instead.
const FEW: usize = 32;

/// The live keys matching `subject` with their last values, from the stream's leader by
/// gets of the next message on the subject; `None` when there are more than [`FEW`]
/// messages to read. A bucket keeps one message a key.
async fn leader_values(
    stream: &stream::Stream,
    subject: &str,
    prefix: &str,
) -> Result<Option<Vec<Found>>> {
    use async_nats::jetstream::stream::RawMessageErrorKind as Kind;
    let mut last: std::collections::BTreeMap<String, Option<Bytes>> = Default::default();
    let mut seq = 1;
    for _ in 0..=FEW {
        let got = stream
            .raw_message_builder()
            .sequence(seq)
            .next_by_subject(subject)
            .send()
            .await;
        let message = match got {
            Ok(message) => message,
            Err(e) if e.kind() == Kind::NoMessageFound => {
                return Ok(Some(
                    last.into_iter()
                        .filter_map(|(key, value)| Some(Found { key, value: value? }))
                        .collect(),
                ));
            }
            Err(e) => return Err(backend("listing entries", e)),
        };
        let deleted = message
            .headers
            .get("KV-Operation")
            .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
        let key = message
            .subject
            .as_str()
            .strip_prefix(prefix)
            .unwrap_or_default()
            .to_string();
        last.insert(key, (!deleted).then_some(message.payload));
        seq = message.sequence + 1;
    }
    Ok(None)
}

/// The live keys matching `subject`, with their last values, by direct gets. A bucket
/// keeps one message a key, so every message is a key's last.
async fn direct_values(
    client: &async_nats::Client,
    bucket: &kv::Store,
    subject: &str,
) -> Result<Vec<Found>> {
    let mut last: std::collections::BTreeMap<String, Option<Bytes>> = Default::default();
    super::direct::each(client, &bucket.stream_name, subject, |got| {
        let key = got
            .subject
            .strip_prefix(&bucket.prefix)
            .unwrap_or_default()
            .to_string();
        last.insert(key, (!got.deleted).then_some(got.payload));
        true
    })
    .await?;
    Ok(last
        .into_iter()
        .filter_map(|(key, value)| Some(Found { key, value: value? }))
        .collect())
}

/// The last value of each subject matching `subject`, unless it is a delete or purge
/// marker.
async fn live_values(
    client: &async_nats::Client,
    stream: &stream::Stream,
    subject: &str,
    prefix: &str,
) -> Result<Vec<Found>> {
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: subject.to_string(),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| backend("listing entries", e))?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| backend("listing entries", e))?;
    // Bounded: the client makes a consumer lost with its server again, and may wait for
    // it forever.
    loop {
        let next = tokio::time::timeout(LIST_IDLE, messages.next())
            .await
            .map_err(|_| backend("listing entries", "the store sent nothing for 10 s"))?;
        let Some(message) = next else { break };
        let message = message.map_err(|e| backend("listing entries", e))?;
        let pending = message
            .info()
            .map_err(|e| backend("listing entries", e))?
            .pending;
        let deleted = message
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
        if !deleted {
            out.push(Found {
                key: message
                    .subject
                    .as_str()
                    .strip_prefix(prefix)
                    .unwrap_or_default()
                    .to_string(),
                value: message.payload.clone(),
            });
        }
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// Reads the messages of `stream` on `subject` in order, from `start` (ms since the
/// epoch; `None`: the first), passing each payload and its time (ms) to `visit` until it
/// returns false or the stream has no more.
pub(crate) async fn messages(
    client: &async_nats::Client,
    stream: &stream::Stream,
    subject: &str,
    start_ms: Option<i64>,
    mut visit: impl FnMut(&[u8], i64) -> bool,
) -> Result<()> {
    let deliver_policy = match start_ms {
        Some(ms) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(ms.max(0)) * 1_000_000,
            )
            .map_err(|e| backend("reading events", e))?,
        },
        None => DeliverPolicy::All,
    };
    let consumer = super::patiently(|| async {
        stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: subject.to_string(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| backend("reading events", e))
    })
    .await?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
    let name = consumer.cached_info().name.clone();
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| backend("reading events", e))?;
    loop {
        // The message the server counted as the last may be removed before it comes
        // (a line past its age while a long read runs): when none comes for a while,
        // the server says whether any is left to read.
        let next = match tokio::time::timeout(SCAN_IDLE, messages.next()).await {
            Ok(next) => next,
            Err(_) if caught_up(stream, &name).await? => break,
            Err(_) => continue,
        };
        let Some(message) = next else { break };
        let message = message.map_err(|e| backend("reading events", e))?;
        let info = message.info().map_err(|e| backend("reading events", e))?;
        let (pending, at_ms) = (
            info.pending,
            (info.published.unix_timestamp_nanos() / 1_000_000) as i64,
        );
        if !visit(&message.payload, at_ms) || pending == 0 {
            break;
        }
    }
    Ok(())
}

/// How long a listing waits for its next entry before it fails.
const LIST_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a scan waits for its next message before it asks whether any is left.
const SCAN_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the scan's consumer has nothing left to deliver. An ordered consumer that
/// was made again (after a gap) has another name, so its first one is gone: the scan
/// then ends with what it read, as the server can no longer say what is left.
async fn caught_up(stream: &stream::Stream, consumer: &str) -> Result<bool> {
    use async_nats::jetstream::context::ConsumerInfoErrorKind as Kind;
    match stream.consumer_info(consumer).await {
        Ok(info) => Ok(info.num_pending == 0),
        Err(e) if matches!(e.kind(), Kind::NotFound) => {
            tracing::warn!("a scan's consumer is gone; ending the scan with what it read");
            Ok(true)
        }
        Err(e) => Err(backend("reading events", e)),
    }
}
