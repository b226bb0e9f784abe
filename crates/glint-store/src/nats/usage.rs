//! [`UsageStore`] on JetStream: a stream of usage deltas, one subject per function
//! (`<ns>.usage.<tenant>.<function>`). Each flush publishes one message per function, and
//! a query sums the deltas per function, version and minute.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{NatsStore, names, scan};
use crate::model::*;
use crate::{Result, UsageStore};

/// Usage summed per minute, function, version and region.
type Sums = BTreeMap<(i64, FunctionName, VersionId, String), UsageRecord>;

/// How long after its minute a record may be flushed: a query reads from this much
/// before its start.
const FLUSH_SLACK_MS: i64 = 2 * 60_000;

#[async_trait]
impl UsageStore for NatsStore {
    async fn add_usage(
        &self,
        tenant: &TenantId,
        batch: &str,
        records: Vec<UsageRecord>,
    ) -> Result<()> {
        let mut batches: BTreeMap<String, Vec<UsageRecord>> = BTreeMap::new();
        for record in records {
            let subject = names::function_events(
                &self.ns,
                names::Events::Usage,
                self.region.as_deref(),
                tenant,
                record.function.as_str(),
            );
            batches.entry(subject).or_default().push(record);
        }
        self.publish_batches("usage", Some(batch), batches).await
    }

    async fn usage(
        &self,
        tenant: &TenantId,
        function: Option<&FunctionName>,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<UsageRecord>> {
        let subject = names::function_events(
            &self.ns,
            names::Events::Usage,
            self.any_region(),
            tenant,
            function.map_or("*", |f| f.as_str()),
        );
        let mut sums: Sums = BTreeMap::new();
        for (region, stream) in self.every_region(|r| &r.usage).await {
            let read = match stream {
                Ok(stream) => {
                    let tag = region.clone().unwrap_or_default();
                    self.sum_usage(&stream, &subject, &tag, start_ms, end_ms, &mut sums)
                        .await
                }
                Err(e) => Err(e),
            };
            match read {
                Ok(()) => {}
                Err(e) if region.as_deref() == self.region.as_deref() => return Err(e),
                Err(e) => {
                    tracing::warn!(region, error = %e, "could not read another region's usage")
                }
            }
        }
        Ok(sums.into_values().collect())
    }
}

impl NatsStore {
    /// Adds one region's usage between `start_ms` and `end_ms` to `sums`, each record
    /// tagged with `region`.
    async fn sum_usage(
        &self,
        stream: &async_nats::jetstream::stream::Stream,
        subject: &str,
        region: &str,
        start_ms: i64,
        end_ms: i64,
        sums: &mut Sums,
    ) -> Result<()> {
        scan::messages(
            &self.client,
            stream,
            subject,
            Some(start_ms - FLUSH_SLACK_MS),
            |payload, at_ms| {
                if at_ms > end_ms + FLUSH_SLACK_MS {
                    return false;
                }
                let Ok(records) = serde_json::from_slice::<Vec<UsageRecord>>(payload) else {
                    return true;
                };
                for mut r in records {
                    if r.minute_ms < start_ms || r.minute_ms >= end_ms {
                        continue;
                    }
                    r.region = region.to_string();
                    let key = (r.minute_ms, r.function.clone(), r.version, r.region.clone());
                    match sums.get_mut(&key) {
                        None => {
                            sums.insert(key, r);
                        }
                        Some(sum) => sum.add(&r),
                    }
                }
                true
            },
        )
        .await
    }
}
