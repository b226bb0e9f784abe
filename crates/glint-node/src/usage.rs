//! Usage metering and recent request statistics, off the request path.
//!
//! Each version has a [`VersionMeter`] that every request and every guest adds to
//! (requests, errors, bytes, wall and CPU time, memory × time, the Prometheus totals),
//! kept in one copy per core ([`stripes`]) so that two cores serving the same function do
//! not write the same cache lines, and a short in-memory history of recent requests per
//! function for the dashboard's percentiles. A flusher task moves the usage into the
//! store every few seconds, summed per function, version and minute
//! ([`glint_store::UsageStore`]); a scrape adds the copies up ([`export`]). The request
//! path never waits on either.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use glint_runtime::Usage;
use glint_store::{FunctionName, TenantId, UsageRecord, UsageStore, VersionId, now_ms};
use prometheus_client::collector::Collector;
use tokio::sync::watch;

use crate::metrics::{FunctionLabels, Metrics, NodeCollector};

mod export;
mod stripes;

use stripes::Stripes;

/// How often counters go to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How far back the in-memory history reaches, and its size per function.
const RECENT_MS: i64 = 60 * 60 * 1000;
const RECENT_MAX: usize = 20_000;
/// Recent requests a core keeps before it moves them to its function's history.
const RECENT_BATCH: usize = 128;

/// `glint_request_duration_seconds`' buckets: 100 µs to about 26 s, doubling, then +Inf
/// (which prometheus-client writes for `f64::MAX`).
const DURATION_BUCKETS: usize = 20;

fn duration_bounds() -> [f64; DURATION_BUCKETS] {
    let mut bounds = [f64::MAX; DURATION_BUCKETS];
    let mut bound = 0.0001;
    for b in bounds.iter_mut().take(DURATION_BUCKETS - 1) {
        *b = bound;
        bound *= 2.0;
    }
    bounds
}

/// Usage since the last flush, which moves it to the store.
#[derive(Default)]
struct Delta {
    requests: u64,
    errors: u64,
    bytes_in: u64,
    bytes_out: u64,
    wall_ms: u64,
    cpu_us: u64,
    memory_kib_ms: u64,
}

impl Delta {
    fn record(self, function: &FunctionName, version: VersionId, minute_ms: i64) -> UsageRecord {
        UsageRecord {
            function: function.clone(),
            version,
            minute_ms,
            requests: self.requests,
            errors: self.errors,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            wall_ms: self.wall_ms,
            cpu_us: self.cpu_us,
            memory_kib_ms: self.memory_kib_ms,
            region: String::new(),
        }
    }
}

/// A histogram's counts per bucket (not cumulative), sum and count.
#[derive(Clone, Copy)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS],
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: [0; DURATION_BUCKETS],
            sum: 0.0,
            count: 0,
        }
    }
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        static BOUNDS: std::sync::LazyLock<[f64; DURATION_BUCKETS]> =
            std::sync::LazyLock::new(duration_bounds);
        let i = BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DURATION_BUCKETS - 1);
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    fn add(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// What Prometheus is shown: totals since the node started, and the gauges.
#[derive(Clone, Copy, Default)]
struct Totals {
    /// `glint_requests_total` by status class, 1xx..5xx.
    by_class: [u64; 5],
    duration: Histogram,
    guest_cpu_seconds: f64,
    memory_peak: u64,
    /// Outbound requests allowed and denied.
    outbound: [u64; 2],
    /// KV calls that succeeded, were denied, failed.
    kv: [u64; 3],
    /// Requests running in a guest, and waiting for a concurrency slot. A copy may go
    /// below zero (a request may end on another core than it started on); the sum never
    /// does.
    in_flight: i64,
    queued: i64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        for (a, b) in self.by_class.iter_mut().zip(o.by_class) {
            *a += b;
        }
        self.duration.add(&o.duration);
        self.guest_cpu_seconds += o.guest_cpu_seconds;
        self.memory_peak = self.memory_peak.max(o.memory_peak);
        for (a, b) in self.outbound.iter_mut().zip(o.outbound) {
            *a += b;
        }
        for (a, b) in self.kv.iter_mut().zip(o.kv) {
            *a += b;
        }
        self.in_flight += o.in_flight;
        self.queued += o.queued;
    }
}

/// One core's copy of what a version's requests added.
#[derive(Default)]
struct Tally {
    delta: Delta,
    totals: Totals,
    /// Requests and guest CPU times not yet moved to the function's history.
    requests: Vec<Sample>,
    cpu: Vec<(i64, u32)>,
}

/// One finished request, as the dashboard's statistics need it.
#[derive(Clone, Copy)]
pub struct Sample {
    pub ts_ms: i64,
    pub latency_us: u32,
    pub error: bool,
}

/// A function's recent requests and guest CPU, roughly oldest first (each core moves
/// its requests in batches).
#[derive(Default)]
pub struct Recent {
    requests: Mutex<VecDeque<Sample>>,
    cpu: Mutex<VecDeque<(i64, u32)>>,
}

fn push_bounded<T>(queue: &Mutex<VecDeque<T>>, items: &mut Vec<T>, ts_of: impl Fn(&T) -> i64) {
    if items.is_empty() {
        return;
    }
    let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
    let cutoff = now_ms() - RECENT_MS;
    while q.front().is_some_and(|f| ts_of(f) < cutoff) {
        q.pop_front();
    }
    q.extend(items.drain(..));
    let over = q.len().saturating_sub(RECENT_MAX);
    q.drain(..over);
}

impl Recent {
    /// Requests that finished at or after `since_ms`.
    pub fn requests_since(&self, since_ms: i64) -> Vec<Sample> {
        let q = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        q.iter().filter(|s| s.ts_ms >= since_ms).copied().collect()
    }

    /// Guest CPU time (µs) of invocations that finished at or after `since_ms`.
    pub fn cpu_since(&self, since_ms: i64) -> Vec<u32> {
        let q = self.cpu.lock().unwrap_or_else(PoisonError::into_inner);
        q.iter()
            .filter(|(ts, _)| *ts >= since_ms)
            .map(|(_, us)| *us)
            .collect()
    }

    fn absorb(&self, tally: &mut Tally) {
        push_bounded(&self.requests, &mut tally.requests, |s| s.ts_ms);
        push_bounded(&self.cpu, &mut tally.cpu, |(ts, _)| *ts);
    }
}

/// What one version's requests and guests add to. A request takes no shared lock and
/// allocates nothing to be counted.
pub struct VersionMeter {
    tally: Stripes<Tally>,
    /// Its function's history; read it through `Meter::recent`, which first moves the
    /// cores' pending requests in.
    recent: Arc<Recent>,
    labels: FunctionLabels,
    /// The version, as its `glint_requests_total` series is labelled.
    version: String,
}

impl VersionMeter {
    pub fn labels(&self) -> &FunctionLabels {
        &self.labels
    }

    /// Counts `n` more (or fewer) requests waiting for a concurrency slot.
    pub fn add_queued(&self, n: i64) {
        self.tally.with(|t| t.totals.queued += n);
    }

    /// Counts `n` more (or fewer) requests running in a guest.
    pub fn add_in_flight(&self, n: i64) {
        self.tally.with(|t| t.totals.in_flight += n);
    }

    /// One finished request: its status, size and time from arrival to the end of its
    /// response body.
    pub fn request_finished(&self, status: u16, bytes_in: u64, bytes_out: u64, took: Duration) {
        let error = status >= 500;
        let sample = Sample {
            ts_ms: now_ms(),
            latency_us: took.as_micros().min(u32::MAX as u128) as u32,
            error,
        };
        self.tally.with(|t| {
            let d = &mut t.delta;
            d.requests += 1;
            d.errors += u64::from(error);
            d.bytes_in += bytes_in;
            d.bytes_out += bytes_out;
            d.wall_ms += took.as_millis() as u64;
            let class = (status / 100).clamp(1, 5) as usize - 1;
            t.totals.by_class[class] += 1;
            t.totals.duration.observe(took.as_secs_f64());
            t.requests.push(sample);
            if t.requests.len() >= RECENT_BATCH {
                self.recent.absorb(t);
            }
        });
    }

    /// What a guest used, as the runtime reports it when the guest returns.
    pub fn guest_finished(&self, usage: &Usage) {
        let cpu_us = usage.cpu.as_micros() as u64;
        let kib_ms = (usage.peak_memory_bytes / 1024) * usage.wall.as_millis().max(1) as u64;
        let ts_ms = now_ms();
        self.tally.with(|t| {
            t.delta.cpu_us += cpu_us;
            t.delta.memory_kib_ms += kib_ms;
            let totals = &mut t.totals;
            totals.guest_cpu_seconds += usage.cpu.as_secs_f64();
            totals.memory_peak = totals.memory_peak.max(usage.peak_memory_bytes);
            totals.outbound[0] += u64::from(usage.outbound_allowed);
            totals.outbound[1] += u64::from(usage.outbound_denied);
            totals.kv[0] += u64::from(usage.kv.ok);
            totals.kv[1] += u64::from(usage.kv.denied);
            totals.kv[2] += u64::from(usage.kv.errors);
            t.cpu.push((ts_ms, cpu_us.min(u32::MAX as u64) as u32));
            if t.cpu.len() >= RECENT_BATCH {
                self.recent.absorb(t);
            }
        });
    }

    /// Every core's totals, added up.
    fn totals(&self) -> Totals {
        let mut sum = Totals::default();
        for t in self.tally.each() {
            sum.add(&t.totals);
        }
        sum
    }

    /// Moves every core's recent requests to the function's history.
    fn drain_recent(&self) {
        for mut t in self.tally.each() {
            self.recent.absorb(&mut t);
        }
    }

    /// Takes the usage since the last take, leaving zeros.
    fn take(
        &self,
        function: &FunctionName,
        version: VersionId,
        minute_ms: i64,
    ) -> Option<UsageRecord> {
        let mut sum: Option<UsageRecord> = None;
        for mut t in self.tally.each() {
            let core = std::mem::take(&mut t.delta).record(function, version, minute_ms);
            match &mut sum {
                None => sum = Some(core),
                Some(sum) => sum.add(&core),
            }
        }
        sum.filter(|r| r.requests > 0 || r.cpu_us > 0 || r.memory_kib_ms > 0)
    }
}

type VersionKey = (TenantId, FunctionName, VersionId);
type FunctionKey = (TenantId, FunctionName);

/// A function's metered versions.
#[derive(Default)]
struct FunctionMeters {
    versions: HashMap<VersionId, Arc<VersionMeter>>,
    /// What versions forgotten while the function lives had counted, so that the
    /// function's Prometheus counters never go back.
    forgotten: Totals,
}

/// What a scrape and the flusher read: every version's meter.
#[derive(Default)]
struct Ledger {
    /// By function, then version: forgetting one function's versions looks at no other.
    functions: Mutex<HashMap<FunctionKey, FunctionMeters>>,
    recent: Mutex<HashMap<FunctionKey, Arc<Recent>>>,
    /// Meters of deleted versions, kept until the next flush stores what they counted.
    retired: Mutex<Vec<(VersionKey, Arc<VersionMeter>)>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every version's meter, and every function's recent history.
pub struct Meter {
    pub metrics: Arc<Metrics>,
    ledger: Arc<Ledger>,
    /// Batches the store did not take, sent again with the next flush.
    unsent: Mutex<Vec<Batch>>,
    /// Names this process's batches: unique across nodes and restarts.
    run: String,
    flushes: std::sync::atomic::AtomicU64,
}

/// One tenant's records of one flush, under the name the store knows them by.
struct Batch {
    name: String,
    tenant: TenantId,
    records: Vec<UsageRecord>,
}

/// Most records kept while the store takes none: about an hour of 2-second flushes of
/// 50 busy versions, some 20 MB. Beyond that the oldest go, said in the log.
const MAX_UNSENT_RECORDS: usize = 100_000;

impl Meter {
    /// The node's meter, and its metrics with `node` (the node-wide values) beside the
    /// versions' own.
    pub fn new(node: NodeCollector) -> Self {
        Self::with_collectors(vec![Box::new(node)])
    }

    fn with_collectors(mut collectors: Vec<Box<dyn Collector>>) -> Self {
        let ledger = Arc::new(Ledger::default());
        collectors.push(Box::new(export::Versions(ledger.clone())));
        let metrics = Metrics::new(collectors);
        Self {
            metrics: Arc::new(metrics),
            ledger,
            unsent: Mutex::default(),
            run: uuid::Uuid::now_v7().simple().to_string(),
            flushes: Default::default(),
        }
    }

    /// Forgets the versions of a function that are not in `keep` (all of them, for a
    /// deleted function, whose recent history and series go too): their meters leave
    /// after the next flush, and their series at once.
    pub fn forget(&self, tenant: &TenantId, function: &FunctionName, keep: &[VersionId]) {
        let key = (tenant.clone(), function.clone());
        let gone: Vec<(VersionKey, Arc<VersionMeter>)> = {
            let mut functions = locked(&self.ledger.functions);
            let Some(of_function) = functions.get_mut(&key) else {
                return;
            };
            let ids: Vec<VersionId> = of_function
                .versions
                .keys()
                .filter(|v| !keep.contains(v))
                .copied()
                .collect();
            let gone: Vec<_> = ids
                .into_iter()
                .filter_map(|v| {
                    of_function
                        .versions
                        .remove(&v)
                        .map(|m| ((tenant.clone(), function.clone(), v), m))
                })
                .collect();
            for (_, meter) in &gone {
                let mut totals = meter.totals();
                // Its requests still running are no longer the function's to show.
                (totals.in_flight, totals.queued) = (0, 0);
                of_function.forgotten.add(&totals);
            }
            if of_function.versions.is_empty() {
                functions.remove(&key);
            }
            gone
        };
        if keep.is_empty() {
            locked(&self.ledger.recent).remove(&key);
            self.metrics.forget_function(&FunctionLabels {
                tenant: tenant.to_string(),
                function: function.to_string(),
            });
        } else {
            for (_, meter) in &gone {
                meter.drain_recent();
            }
        }
        locked(&self.ledger.retired).extend(gone);
    }

    /// Drops everything counted for `tenant` and not stored yet, as deleting the tenant
    /// does (its functions are forgotten first). A flush already under way may still
    /// store its last records.
    pub fn discard_tenant(&self, tenant: &TenantId) {
        locked(&self.ledger.retired).retain(|((t, _, _), _)| t != tenant);
        locked(&self.unsent).retain(|batch| &batch.tenant != tenant);
    }

    /// Versions metered now (`/api/v1/node` shows it, so pruning can be seen).
    pub fn versions_metered(&self) -> usize {
        locked(&self.ledger.functions)
            .values()
            .map(|f| f.versions.len())
            .sum()
    }

    /// The meter of a version, made on first use and kept across route rebuilds.
    pub fn version(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
        version: VersionId,
    ) -> Arc<VersionMeter> {
        let recent = self.history(tenant, function);
        locked(&self.ledger.functions)
            .entry((tenant.clone(), function.clone()))
            .or_default()
            .versions
            .entry(version)
            .or_insert_with(|| {
                Arc::new(VersionMeter {
                    tally: Stripes::default(),
                    recent,
                    labels: FunctionLabels {
                        tenant: tenant.to_string(),
                        function: function.to_string(),
                    },
                    version: version.to_string(),
                })
            })
            .clone()
    }

    fn history(&self, tenant: &TenantId, function: &FunctionName) -> Arc<Recent> {
        locked(&self.ledger.recent)
            .entry((tenant.clone(), function.clone()))
            .or_default()
            .clone()
    }

    /// The function's recent history, up to now (empty for a function that has served
    /// nothing).
    pub fn recent(&self, tenant: &TenantId, function: &FunctionName) -> Arc<Recent> {
        let versions: Vec<Arc<VersionMeter>> = locked(&self.ledger.functions)
            .get(&(tenant.clone(), function.clone()))
            .map(|f| f.versions.values().cloned().collect())
            .unwrap_or_default();
        for v in versions {
            v.drain_recent();
        }
        self.history(tenant, function)
    }

    /// Moves every version's usage into usage records, per tenant.
    fn take_all(&self) -> HashMap<TenantId, Vec<UsageRecord>> {
        let minute_ms = now_ms() / 60_000 * 60_000;
        let mut versions: Vec<(VersionKey, Arc<VersionMeter>)> = locked(&self.ledger.functions)
            .iter()
            .flat_map(|((t, f), of)| {
                of.versions
                    .iter()
                    .map(|(v, m)| ((t.clone(), f.clone(), *v), m.clone()))
            })
            .collect();
        versions.extend(std::mem::take(&mut *locked(&self.ledger.retired)));
        let mut out: HashMap<TenantId, Vec<UsageRecord>> = HashMap::new();
        for ((tenant, function, version), meter) in versions {
            if let Some(record) = meter.take(&function, version, minute_ms) {
                out.entry(tenant).or_default().push(record);
            }
        }
        out
    }

    /// Sends what was counted since the last flush, and every batch the store did not
    /// take before, under its first name, so a store that took one whose answer was lost
    /// does not count it twice.
    async fn flush(&self, store: &dyn UsageStore) {
        let flush = self
            .flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut batches = std::mem::take(&mut *locked(&self.unsent));
        batches.extend(self.take_all().into_iter().map(|(tenant, records)| Batch {
            name: format!("{}:{flush}", self.run),
            tenant,
            records,
        }));
        let mut unsent = Vec::new();
        for batch in batches {
            if let Err(e) = store
                .add_usage(&batch.tenant, &batch.name, batch.records.clone())
                .await
            {
                tracing::error!(error = %e, records = batch.records.len(), "cannot store usage records; sending them again with the next flush");
                unsent.push(batch);
            }
        }
        let mut kept: usize = unsent.iter().map(|b| b.records.len()).sum();
        while kept > MAX_UNSENT_RECORDS && !unsent.is_empty() {
            let oldest = unsent.remove(0);
            kept -= oldest.records.len();
            tracing::error!(records = oldest.records.len(), tenant = %oldest.tenant, "the store has taken no usage for too long; the oldest unsent records are dropped");
        }
        let mut pending = locked(&self.unsent);
        unsent.append(&mut pending);
        *pending = unsent;
    }
}

/// Flushes usage to the store every few seconds, and once more when `shutdown` flips.
pub fn start_flusher(
    meter: Arc<Meter>,
    store: Arc<dyn UsageStore>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => meter.flush(store.as_ref()).await,
                _ = shutdown.changed() => {
                    meter.flush(store.as_ref()).await;
                    break;
                }
            }
        }
    })
}

/// Percentiles and rates of a function's recent requests.
#[derive(Debug, Default, serde::Serialize, PartialEq, utoipa::ToSchema)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub cpu_ms_avg: f64,
}

/// The value at quantile `q` of sorted `values`, nearest rank.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

pub fn summarize(requests: &[Sample], cpu_us: &[u32], window: Duration) -> Summary {
    let mut latencies: Vec<u32> = requests.iter().map(|s| s.latency_us).collect();
    latencies.sort_unstable();
    let errors = requests.iter().filter(|s| s.error).count() as u64;
    let n = requests.len() as u64;
    Summary {
        requests: n,
        errors,
        rps: n as f64 / window.as_secs_f64().max(1.0),
        error_rate: if n == 0 {
            0.0
        } else {
            errors as f64 / n as f64
        },
        p50_ms: quantile(&latencies, 0.50),
        p95_ms: quantile(&latencies, 0.95),
        p99_ms: quantile(&latencies, 0.99),
        cpu_ms_avg: if cpu_us.is_empty() {
            0.0
        } else {
            cpu_us.iter().map(|&c| c as f64).sum::<f64>() / cpu_us.len() as f64 / 1000.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{labels...}` in a scrape.
    fn scraped(text: &str, name: &str, labels: &str) -> f64 {
        let prefix = format!("{name}{{{labels}");
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    }

    #[test]
    fn a_scrape_adds_up_every_core_and_a_deleted_version_leaves_its_counts() {
        let meter = Meter::with_collectors(Vec::new());
        let (tenant, function) = (TenantId::default_tenant(), "f".parse().unwrap());
        let v1 = meter.version(&tenant, &function, VersionId(1));
        let v2 = meter.version(&tenant, &function, VersionId(2));
        // Requests finish on several threads, so on several copies.
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for status in [200, 200, 503] {
                        v1.request_finished(status, 10, 20, Duration::from_millis(3));
                    }
                    v2.request_finished(200, 0, 0, Duration::from_secs(1));
                    v1.add_in_flight(1);
                });
            }
        });
        v1.add_in_flight(-1);
        let text = meter.metrics.encode();
        let f = r#"tenant="default",function="f""#;
        assert_eq!(
            scraped(
                &text,
                "glint_requests_total",
                &format!(r#"{f},version="v1",status="2xx""#)
            ),
            6.0
        );
        assert_eq!(
            scraped(
                &text,
                "glint_requests_total",
                &format!(r#"{f},version="v1",status="5xx""#)
            ),
            3.0
        );
        assert_eq!(
            scraped(
                &text,
                "glint_requests_total",
                &format!(r#"{f},version="v2",status="2xx""#)
            ),
            3.0
        );
        assert_eq!(
            scraped(&text, "glint_request_duration_seconds_count", f),
            12.0
        );
        // 3 ms falls in the 0.0032 s bucket (cumulative), 1 s only from 1.6384 s.
        assert_eq!(
            scraped(
                &text,
                "glint_request_duration_seconds_bucket",
                &format!(r#"le="0.0032",{f}"#)
            ),
            9.0
        );
        assert_eq!(
            scraped(
                &text,
                "glint_request_duration_seconds_bucket",
                &format!(r#"le="+Inf",{f}"#)
            ),
            12.0
        );
        assert_eq!(scraped(&text, "glint_requests_in_flight", f), 2.0);

        // Deleting version 1 drops its series, but not what the function counted.
        meter.forget(&tenant, &function, &[VersionId(2)]);
        v2.request_finished(200, 0, 0, Duration::from_millis(1));
        let text = meter.metrics.encode();
        assert!(!text.contains(r#"version="v1""#), "{text}");
        assert_eq!(
            scraped(&text, "glint_request_duration_seconds_count", f),
            13.0
        );
        assert_eq!(meter.recent(&tenant, &function).requests_since(0).len(), 13);
        // What version 1 used still reaches the store, once.
        let records = meter.take_all().remove(&tenant).unwrap();
        let requests: u64 = records.iter().map(|r| r.requests).sum();
        assert_eq!(requests, 13);
        assert!(meter.take_all().is_empty());

        // Deleting the function drops all of it.
        meter.forget(&tenant, &function, &[]);
        assert!(!meter.metrics.encode().contains(f));
        assert_eq!(meter.versions_metered(), 0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Sample> = (1..=100)
            .map(|i| Sample {
                ts_ms: 0,
                latency_us: i * 1000,
                error: i > 98,
            })
            .collect();
        let s = summarize(&samples, &[500, 1500], Duration::from_secs(10));
        assert_eq!((s.p50_ms, s.p95_ms, s.p99_ms), (50.0, 95.0, 99.0));
        assert_eq!((s.requests, s.errors), (100, 2));
        assert_eq!(s.rps, 10.0);
        assert_eq!(s.cpu_ms_avg, 1.0);
        assert_eq!(
            summarize(&[], &[], Duration::from_secs(60)),
            Summary::default()
        );
    }
}
