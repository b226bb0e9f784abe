//! Batched direct gets: many messages of a stream in one request to
//! `$JS.API.DIRECT.GET.<stream>` with `batch`. Any server holding the stream answers, a
//! mirror's servers too, and no consumer is made, so these reads work in a region that
//! is cut off from the rest of the supercluster (and from JetStream's meta leader, which
//! every consumer needs).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::backend;
use crate::Result;

/// Messages asked for in one request.
const BATCH: u64 = 256;
/// How long a server may take between two messages of one answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// One message of a stream.
pub(crate) struct Got {
    pub subject: String,
    pub payload: Bytes,
    /// A KV delete or purge marker.
    pub deleted: bool,
}

/// Passes every message of `stream` whose subject matches `subject` (a pattern), in
/// order of sequence, to `visit`, until it returns false or the stream has no more.
pub(crate) async fn each(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    mut visit: impl FnMut(Got) -> bool,
) -> Result<()> {
    let mut next = 1u64;
    loop {
        match batch(client, stream, subject, next, &mut visit).await? {
            // A batch that moved on; one that did not would ask the same again.
            Batch::More(seq) if seq > next => next = seq,
            Batch::More(_) | Batch::Done => return Ok(()),
        }
    }
}

enum Batch {
    /// The stream has more after this sequence.
    More(u64),
    Done,
}

async fn batch(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    from: u64,
    visit: &mut impl FnMut(Got) -> bool,
) -> Result<Batch> {
    let fail = |e: &dyn std::fmt::Display| backend(&format!("reading the stream {stream}"), e);
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| fail(&e))?;
    let request = serde_json::json!({"seq": from, "next_by_subj": subject, "batch": BATCH});
    client
        .publish_with_reply(
            format!("$JS.API.DIRECT.GET.{stream}"),
            inbox,
            request.to_string().into(),
        )
        .await
        .map_err(|e| fail(&e))?;
    let mut next = from;
    loop {
        let reply = match tokio::time::timeout(REPLY_TIMEOUT, replies.next()).await {
            Ok(Some(reply)) => reply,
            Ok(None) => return Err(fail(&"the subscription ended")),
            Err(_) => return Err(fail(&"timed out")),
        };
        let header = |name: &str| {
            reply
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        if let Some(status) = reply.status {
            return match status.as_u16() {
                // The end of this batch; more may follow it.
                204 => Ok(match header("Nats-Num-Pending").as_deref() {
                    Some("0") | None => Batch::Done,
                    Some(_) => Batch::More(next),
                }),
                // Nothing at or after `from`.
                404 => Ok(Batch::Done),
                503 => Err(fail(&"no responders")),
                _ => Err(fail(&format!(
                    "status {status}: {}",
                    reply.description.clone().unwrap_or_default()
                ))),
            };
        }
        let (Some(found), Some(sequence)) = (
            header("Nats-Subject"),
            header("Nats-Sequence").and_then(|s| s.parse::<u64>().ok()),
        ) else {
            return Err(fail(&"an answer without its subject or sequence"));
        };
        let deleted = header("KV-Operation").is_some_and(|op| op == "DEL" || op == "PURGE");
        next = sequence + 1;
        let go_on = visit(Got {
            subject: found,
            payload: reply.payload.clone(),
            deleted,
        });
        if !go_on {
            return Ok(Batch::Done);
        }
    }
}
