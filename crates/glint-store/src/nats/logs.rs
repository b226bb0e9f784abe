//! [`LogStore`] on JetStream: a stream of log lines, one subject per function
//! (`<ns>.logs.<tenant>.<function>`). A flush publishes one message per function, a JSON
//! array of its lines, because the server fsyncs each message. The server enforces
//! retention by age and size; a query reads the function's (or tenant's) subjects from
//! its start time on.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;

use super::{NatsStore, backend, names, scan, to_json};
use crate::model::*;
use crate::{LogStore, Result};

/// The most one message carries; a function's batch past it goes in several.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// How far a query reads before its start: a line's time is the node's clock, the
/// message's is the server's, and lines wait up to a flush before they are sent.
const CLOCK_SLACK_MS: i64 = 5_000;
/// How long a query waits for another region's stream before it goes on without it.
pub(crate) const FAR_READ: Duration = Duration::from_secs(5);

impl NatsStore {
    /// Deletes a function's lines, as deleting the function does.
    pub(crate) async fn purge_function_logs(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
    ) -> Result<()> {
        self.purge_events(names::Events::Logs, tenant, function.as_str())
            .await
            .map(drop)
    }

    /// Deletes the events of one kind of a tenant's `function` (`*`: all its functions)
    /// in every region. Returns how many messages went, and the other regions that could
    /// not be reached, whose events stay until their retention or a second try; this
    /// region's must go.
    pub(crate) async fn purge_events(
        &self,
        events: names::Events,
        tenant: &TenantId,
        function: &str,
    ) -> Result<(u64, Vec<String>)> {
        let subject = names::function_events(&self.ns, events, self.any_region(), tenant, function);
        let pick: fn(&super::RegionListing) -> &String = match events {
            names::Events::Logs => |r: &super::RegionListing| &r.logs,
            names::Events::Usage => |r: &super::RegionListing| &r.usage,
        };
        let (mut purged, mut pending) = (0, Vec::new());
        for (region, stream) in self.every_region(pick).await {
            let done = match stream {
                Ok(stream) => stream
                    .purge()
                    .filter(subject.as_str())
                    .await
                    .map(|r| r.purged)
                    .map_err(|e| backend("deleting stored events", e)),
                Err(e) => Err(e),
            };
            match done {
                Ok(n) => purged += n,
                Err(e) if region.as_deref() == self.region.as_deref() => return Err(e),
                Err(e) => {
                    tracing::warn!(region, error = %e, "could not delete stored events in another region");
                    pending.extend(region);
                }
            }
        }
        Ok((purged, pending))
    }

    /// Matches every region in a subject of [`names`], when there are regions.
    pub(crate) fn any_region(&self) -> Option<&'static str> {
        self.region.as_ref().map(|_| "*")
    }

    /// Every region's stream of one kind (`pick` names it in a listing): this region's
    /// as the node has it, the others' as their servers answer, each with its region.
    pub(crate) async fn every_region(
        &self,
        pick: fn(&super::RegionListing) -> &String,
    ) -> Vec<(
        Option<String>,
        Result<async_nats::jetstream::stream::Stream>,
    )> {
        let own = [&self.logs, &self.usage];
        let regions = self.regions().await;
        let opened = regions.iter().map(|listing| async move {
            let name = pick(listing);
            if let Some(mine) = own.iter().find(|s| &s.cached_info().config.name == name) {
                return (self.region.clone(), Ok((*mine).clone()));
            }
            let region = Some(listing.region.clone());
            match tokio::time::timeout(FAR_READ, self.js.get_stream(name)).await {
                Ok(Ok(stream)) => (region, Ok(stream)),
                Ok(Err(e)) => (
                    region,
                    Err(backend(
                        &format!("opening region {}'s stream {name}", listing.region),
                        e,
                    )),
                ),
                Err(_) => (
                    region,
                    Err(backend(
                        &format!("opening region {}'s stream {name}", listing.region),
                        "timed out",
                    )),
                ),
            }
        });
        futures_util::future::join_all(opened).await
    }

    /// Publishes each subject's `items` as JSON arrays, as few messages as fit, and
    /// waits until the server has them all.
    /// With `batch`, each message carries a `Nats-Msg-Id` made of it, the subject and
    /// the message's place, so JetStream drops a message sent again within its duplicate
    /// window.
    pub(crate) async fn publish_batches<T: serde::Serialize>(
        &self,
        what: &str,
        batch: Option<&str>,
        batches: BTreeMap<String, Vec<T>>,
    ) -> Result<()> {
        let mut acks = Vec::new();
        for (subject, items) in batches {
            let mut part = 0;
            let mut id = || {
                part += 1;
                batch.map(|b| format!("{b}:{subject}:{part}"))
            };
            // Each item encoded once; a message is `[` items joined by `,` `]`.
            let mut message = Vec::new();
            for item in &items {
                let encoded = to_json(what, item)?;
                if message.len() > 1 && message.len() + encoded.len() + 2 > MAX_MESSAGE_BYTES {
                    acks.push(self.publish(what, &subject, id(), message).await?);
                    message = Vec::new();
                }
                message.push(if message.is_empty() { b'[' } else { b',' });
                message.extend_from_slice(&encoded);
            }
            if !message.is_empty() {
                acks.push(self.publish(what, &subject, id(), message).await?);
            }
        }
        for ack in acks {
            ack.await
                .map_err(|e| backend(&format!("storing {what}"), e))?;
        }
        Ok(())
    }

    /// Sends one message (`[` and its items, closed here) on `subject`, with `id` as
    /// its `Nats-Msg-Id` if given.
    async fn publish(
        &self,
        what: &str,
        subject: &str,
        id: Option<String>,
        mut message: Vec<u8>,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture> {
        message.push(b']');
        let sent = match id {
            Some(id) => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                self.js
                    .publish_with_headers(subject.to_string(), headers, message.into())
                    .await
            }
            None => self.js.publish(subject.to_string(), message.into()).await,
        };
        sent.map_err(|e| backend(&format!("storing {what}"), e))
    }
}

fn matches(line: &LogRecord, q: &LogQuery) -> bool {
    q.version.is_none_or(|v| line.version == v)
        && q.execution_id
            .as_ref()
            .is_none_or(|id| &line.execution_id == id)
        && q.since_ms.is_none_or(|t| line.ts_ms >= t)
        && q.until_ms.is_none_or(|t| line.ts_ms < t)
        && q.min_level.is_none_or(|l| line.level >= l)
        && q.node.as_ref().is_none_or(|n| &line.node == n)
        && q.region.as_ref().is_none_or(|r| &line.region == r)
}

impl NatsStore {
    /// The lines of one region's stream that match `query`.
    async fn region_logs(
        &self,
        stream: &async_nats::jetstream::stream::Stream,
        tenant: &TenantId,
        query: &LogQuery,
    ) -> Result<Vec<LogRecord>> {
        let function = query.function.as_ref().map_or("*", |f| f.as_str());
        let subject = names::function_events(
            &self.ns,
            names::Events::Logs,
            self.any_region(),
            tenant,
            function,
        );
        let wanted = query.lines.max(1);
        let stop_after = query.until_ms.map(|t| t + CLOCK_SLACK_MS);
        let mut kept: VecDeque<LogRecord> = VecDeque::new();
        let mut corrupt = 0;
        scan::messages(
            &self.client,
            stream,
            &subject,
            query.since_ms.map(|t| t - CLOCK_SLACK_MS),
            |payload, at_ms| {
                if stop_after.is_some_and(|t| at_ms > t) {
                    return false;
                }
                let Ok(lines) = serde_json::from_slice::<Vec<LogRecord>>(payload) else {
                    corrupt += 1;
                    return true;
                };
                for line in lines.into_iter().filter(|l| matches(l, query)) {
                    if query.oldest_first && kept.len() == wanted {
                        return true;
                    }
                    kept.push_back(line);
                    if !query.oldest_first && kept.len() > wanted {
                        kept.pop_front();
                    }
                }
                true
            },
        )
        .await?;
        if corrupt > 0 {
            tracing::warn!(
                messages = corrupt,
                "log messages that are not Glint's were skipped"
            );
        }
        Ok(kept.into())
    }
}

#[async_trait]
impl LogStore for NatsStore {
    async fn append_logs(&self, lines: Vec<LogRecord>) -> Result<()> {
        let mut batches: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
        for line in lines {
            let subject = names::function_events(
                &self.ns,
                names::Events::Logs,
                self.region.as_deref(),
                &line.tenant,
                line.function.as_str(),
            );
            batches.entry(subject).or_default().push(line);
        }
        self.publish_batches("log lines", None, batches).await
    }

    async fn logs(&self, tenant: &TenantId, query: LogQuery) -> Result<Vec<LogRecord>> {
        let mut out = Vec::new();
        for (region, stream) in self.every_region(|r| &r.logs).await {
            let read = match stream {
                Ok(stream) => self.region_logs(&stream, tenant, &query).await,
                Err(e) => Err(e),
            };
            match read {
                Ok(lines) => out.extend(lines),
                Err(e) if region.as_deref() == self.region.as_deref() => return Err(e),
                // A region out of reach: its lines are left out, and the rest shown.
                Err(e) => {
                    tracing::warn!(region, error = %e, "could not read another region's logs")
                }
            }
        }
        // Nodes flush on their own clocks: order by the lines' times.
        out.sort_by_key(|l| l.ts_ms);
        let wanted = query.lines.max(1);
        if out.len() > wanted {
            if query.oldest_first {
                out.truncate(wanted);
            } else {
                out.drain(..out.len() - wanted);
            }
        }
        Ok(out)
    }

    async fn prune_logs(&self, before_ms: i64, max_bytes: u64) -> Result<u64> {
        // The server enforces retention; this keeps the stream's limits the node's.
        let age_s = ((now_ms() - before_ms).max(1000) / 1000) as u64;
        let wanted = (age_s, max_bytes);
        if *self.log_retention.lock().unwrap_or_else(|p| p.into_inner()) == Some(wanted) {
            return Ok(0);
        }
        let mut config = self
            .js
            .get_stream(names::events_stream(
                &self.ns,
                names::Events::Logs,
                self.region.as_deref(),
            ))
            .await
            .map_err(|e| backend("reading the logs stream", e))?
            .cached_info()
            .config
            .clone();
        config.max_age = Duration::from_secs(age_s);
        // The server refuses a window for duplicates longer than the lines are kept.
        config.duplicate_window = config.duplicate_window.min(config.max_age);
        config.max_bytes = max_bytes.min(i64::MAX as u64) as i64;
        self.js
            .update_stream(config)
            .await
            .map_err(|e| backend("setting the logs' retention", e))?;
        *self.log_retention.lock().unwrap_or_else(|p| p.into_inner()) = Some(wanted);
        Ok(0)
    }
}
