//! Usage metering and recent request statistics, off the request path.
//!
//! Each version has a [`VersionMeter`]: atomic counters that every request and every
//! guest adds to (requests, errors, bytes, wall and CPU time, memory × time), and a short
//! in-memory history of recent requests per function for the dashboard's percentiles.
//! A flusher task moves the counters into the store every few seconds, summed per
//! function, version and minute ([`glint_store::UsageStore`]); the request path never
//! waits on it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glint_runtime::Usage;
use glint_store::{FunctionName, TenantId, UsageRecord, UsageStore, VersionId, now_ms};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::watch;

use crate::metrics::{FunctionLabels, Metrics, RequestLabels, status_class};

/// How often counters go to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How far back the in-memory history reaches, and its size per function.
const RECENT_MS: i64 = 60 * 60 * 1000;
const RECENT_MAX: usize = 20_000;

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    wall_ms: AtomicU64,
    cpu_us: AtomicU64,
    memory_kib_ms: AtomicU64,
}

/// One finished request, as the dashboard's statistics need it.
#[derive(Clone, Copy)]
pub struct Sample {
    pub ts_ms: i64,
    pub latency_us: u32,
    pub error: bool,
}

/// A function's recent requests and guest CPU, newest last.
#[derive(Default)]
pub struct Recent {
    requests: Mutex<VecDeque<Sample>>,
    cpu: Mutex<VecDeque<(i64, u32)>>,
}

fn push_bounded<T>(queue: &Mutex<VecDeque<T>>, item: T, ts_of: impl Fn(&T) -> i64) {
    let Ok(mut q) = queue.lock() else { return };
    let cutoff = now_ms() - RECENT_MS;
    while q.len() >= RECENT_MAX || q.front().is_some_and(|f| ts_of(f) < cutoff) {
        q.pop_front();
    }
    q.push_back(item);
}

impl Recent {
    /// Requests that finished at or after `since_ms`.
    pub fn requests_since(&self, since_ms: i64) -> Vec<Sample> {
        let q = self.requests.lock().map(|q| q.clone()).unwrap_or_default();
        q.into_iter().filter(|s| s.ts_ms >= since_ms).collect()
    }

    /// Guest CPU time (µs) of invocations that finished at or after `since_ms`.
    pub fn cpu_since(&self, since_ms: i64) -> Vec<u32> {
        let q = self.cpu.lock().map(|q| q.clone()).unwrap_or_default();
        q.into_iter()
            .filter(|(ts, _)| *ts >= since_ms)
            .map(|(_, us)| us)
            .collect()
    }
}

/// What one version's requests and guests add to. The metric handles are looked up once,
/// here, so a request allocates nothing to be counted.
pub struct VersionMeter {
    counters: Counters,
    pub recent: Arc<Recent>,
    labels: FunctionLabels,
    metrics: Arc<Metrics>,
    /// `glint_requests_total` for status classes 1xx..5xx.
    requests: [Counter; 5],
    duration: Histogram,
    in_flight: Gauge,
    queued: Gauge,
    guest: crate::metrics::GuestMetrics,
}

impl VersionMeter {
    pub fn labels(&self) -> &FunctionLabels {
        &self.labels
    }

    /// A request is waiting for a concurrency slot; the guard counts it until dropped.
    pub fn queued(&self) -> GaugeGuard {
        GaugeGuard::inc(self.queued.clone())
    }

    /// A request is running in a guest; the guard counts it until dropped.
    pub fn in_flight(&self) -> GaugeGuard {
        GaugeGuard::inc(self.in_flight.clone())
    }

    /// One finished request: its status, size and time from arrival to the end of its
    /// response body.
    pub fn request_finished(&self, status: u16, bytes_in: u64, bytes_out: u64, took: Duration) {
        let error = status >= 500;
        let c = &self.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.errors.fetch_add(u64::from(error), Ordering::Relaxed);
        c.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        c.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        c.wall_ms
            .fetch_add(took.as_millis() as u64, Ordering::Relaxed);
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[class].inc();
        self.duration.observe(took.as_secs_f64());
        push_bounded(
            &self.recent.requests,
            Sample {
                ts_ms: now_ms(),
                latency_us: took.as_micros().min(u32::MAX as u128) as u32,
                error,
            },
            |s| s.ts_ms,
        );
    }

    /// What a guest used, as the runtime reports it when the guest returns.
    pub fn guest_finished(&self, usage: &Usage) {
        let c = &self.counters;
        let cpu_us = usage.cpu.as_micros() as u64;
        c.cpu_us.fetch_add(cpu_us, Ordering::Relaxed);
        let kib_ms = (usage.peak_memory_bytes / 1024) * usage.wall.as_millis().max(1) as u64;
        c.memory_kib_ms.fetch_add(kib_ms, Ordering::Relaxed);
        self.metrics.record_usage(&self.labels, &self.guest, usage);
        push_bounded(
            &self.recent.cpu,
            (now_ms(), cpu_us.min(u32::MAX as u64) as u32),
            |(ts, _)| *ts,
        );
    }

    /// Takes the counters, leaving zeros.
    fn take(
        &self,
        function: &FunctionName,
        version: VersionId,
        minute_ms: i64,
    ) -> Option<UsageRecord> {
        let c = &self.counters;
        let take = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        let record = UsageRecord {
            function: function.clone(),
            version,
            minute_ms,
            requests: take(&c.requests),
            errors: take(&c.errors),
            bytes_in: take(&c.bytes_in),
            bytes_out: take(&c.bytes_out),
            wall_ms: take(&c.wall_ms),
            cpu_us: take(&c.cpu_us),
            memory_kib_ms: take(&c.memory_kib_ms),
            region: String::new(),
        };
        let empty = record.requests == 0 && record.cpu_us == 0 && record.memory_kib_ms == 0;
        (!empty).then_some(record)
    }
}

/// Adds one to a gauge now and takes it off when dropped.
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn inc(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

type VersionKey = (TenantId, FunctionName, VersionId);
type FunctionKey = (TenantId, FunctionName);

/// Every version's meter, and every function's recent history.
pub struct Meter {
    pub metrics: Arc<Metrics>,
    /// By function, then version: forgetting one function's versions looks at no other.
    versions: Mutex<HashMap<FunctionKey, HashMap<VersionId, Arc<VersionMeter>>>>,
    recent: Mutex<HashMap<FunctionKey, Arc<Recent>>>,
    /// Meters of deleted versions, kept until the next flush stores what they counted.
    retired: Mutex<Vec<(VersionKey, Arc<VersionMeter>)>>,
}

impl Meter {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            versions: Mutex::default(),
            recent: Mutex::default(),
            retired: Mutex::default(),
        }
    }

    /// Forgets the versions of a function that are not in `keep` (all of them, for a
    /// deleted function, whose recent history goes too): their meters leave after the
    /// next flush, and their Prometheus series at once.
    pub fn forget(&self, tenant: &TenantId, function: &FunctionName, keep: &[VersionId]) {
        let key = (tenant.clone(), function.clone());
        let gone: Vec<(VersionKey, Arc<VersionMeter>)> = {
            let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            let Some(of_function) = versions.get_mut(&key) else {
                return;
            };
            let ids: Vec<VersionId> = of_function
                .keys()
                .filter(|v| !keep.contains(v))
                .copied()
                .collect();
            let gone = ids
                .into_iter()
                .filter_map(|v| {
                    of_function
                        .remove(&v)
                        .map(|m| ((tenant.clone(), function.clone(), v), m))
                })
                .collect();
            if of_function.is_empty() {
                versions.remove(&key);
            }
            gone
        };
        let labels = FunctionLabels {
            tenant: tenant.to_string(),
            function: function.to_string(),
        };
        if keep.is_empty() {
            let versions: Vec<VersionId> = gone.iter().map(|((_, _, v), _)| *v).collect();
            self.metrics.forget_function(&labels, &versions);
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.remove(&key);
        } else {
            for ((_, _, v), _) in &gone {
                self.metrics.forget_version(&labels, *v);
            }
        }
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.extend(gone);
    }

    /// Versions metered now (`/api/v1/node` shows it, so pruning can be seen).
    pub fn versions_metered(&self) -> usize {
        self.versions
            .lock()
            .map_or(0, |v| v.values().map(HashMap::len).sum())
    }

    /// The meter of a version, made on first use and kept across route rebuilds.
    pub fn version(
        &self,
        tenant: &TenantId,
        function: &FunctionName,
        version: VersionId,
    ) -> Arc<VersionMeter> {
        let recent = self.recent(tenant, function);
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions
            .entry((tenant.clone(), function.clone()))
            .or_default()
            .entry(version)
            .or_insert_with(|| {
                let labels = FunctionLabels {
                    tenant: tenant.to_string(),
                    function: function.to_string(),
                };
                let m = &self.metrics;
                let requests = [100, 200, 300, 400, 500].map(|status| {
                    m.requests
                        .get_or_create(&RequestLabels {
                            tenant: labels.tenant.clone(),
                            function: labels.function.clone(),
                            version: version.to_string(),
                            status: status_class(status),
                        })
                        .clone()
                });
                Arc::new(VersionMeter {
                    counters: Counters::default(),
                    recent,
                    requests,
                    duration: m.duration.get_or_create(&labels).clone(),
                    in_flight: m.in_flight.get_or_create(&labels).clone(),
                    queued: m.queued.get_or_create(&labels).clone(),
                    guest: m.guest(&labels),
                    labels,
                    metrics: m.clone(),
                })
            })
            .clone()
    }

    /// The function's recent history (empty for a function that has served nothing).
    pub fn recent(&self, tenant: &TenantId, function: &FunctionName) -> Arc<Recent> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .entry((tenant.clone(), function.clone()))
            .or_default()
            .clone()
    }

    /// Moves every version's counters into usage records, per tenant.
    fn take_all(&self) -> HashMap<TenantId, Vec<UsageRecord>> {
        let minute_ms = now_ms() / 60_000 * 60_000;
        let mut versions: Vec<(VersionKey, Arc<VersionMeter>)> = self
            .versions
            .lock()
            .map(|by_function| {
                by_function
                    .iter()
                    .flat_map(|((t, f), of)| {
                        of.iter()
                            .map(|(v, m)| ((t.clone(), f.clone(), *v), m.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.extend(
            self.retired
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default(),
        );
        let mut out: HashMap<TenantId, Vec<UsageRecord>> = HashMap::new();
        for ((tenant, function, version), meter) in versions {
            if let Some(record) = meter.take(&function, version, minute_ms) {
                out.entry(tenant).or_default().push(record);
            }
        }
        out
    }

    async fn flush(&self, store: &dyn UsageStore) {
        for (tenant, records) in self.take_all() {
            if let Err(e) = store.add_usage(&tenant, records).await {
                tracing::error!(error = %e, "cannot store usage records");
            }
        }
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
#[derive(Debug, Default, serde::Serialize, PartialEq)]
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

/// Counts a request from arrival to the end of its response body, then reports it to
/// the version's meter; held by the response body so streaming time counts.
pub struct RequestTimer {
    pub meter: Arc<VersionMeter>,
    pub started: Instant,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.meter.request_finished(
            self.status,
            self.bytes_in,
            self.bytes_out,
            self.started.elapsed(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
