//! The node's Prometheus metrics, served as text at `/metrics` on the admin listener.
//!
//! Labels are bounded: tenant, function, version and small enums (status class, result,
//! source), never execution ids or paths. Counters that the runtime already keeps
//! (compiles, cache loads) and the process's own gauges are read at scrape time by
//! [`NodeCollector`], and the versions' requests and usage by the meter's collector
//! (`usage::export`), so the request path touches no metric of this registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use glint_runtime::Runtime;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub tenant: String,
    pub function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub tenant: String,
    pub function: String,
    pub version: String,
    /// `2xx`, `4xx`, `5xx`...
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub tenant: String,
    pub function: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ColdStartLabels {
    pub tenant: String,
    pub function: String,
    /// `cache` (mapped in from the compile cache) or `compile`.
    pub source: &'static str,
}

/// The node's registry: its collectors (the node-wide values, the versions' meters, read
/// at scrape time), and the cold starts, which are rare enough to count as they happen.
pub struct Metrics {
    registry: Registry,
    pub cold_starts: Family<ColdStartLabels, Counter>,
}

impl Metrics {
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> Self {
        let mut registry = Registry::default();
        let cold_starts = Family::<ColdStartLabels, Counter>::default();
        registry.register(
            "glint_cold_starts",
            "Versions made ready on this node for their first request, from the compile cache or by compiling",
            cold_starts.clone(),
        );
        for c in collectors {
            registry.register_collector(c);
        }
        Self {
            registry,
            cold_starts,
        }
    }

    /// Drops every cold-start series of a deleted function.
    pub fn forget_function(&self, labels: &FunctionLabels) {
        for source in ["cache", "compile"] {
            self.cold_starts.remove(&ColdStartLabels {
                tenant: labels.tenant.clone(),
                function: labels.function.clone(),
                source,
            });
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// The exposition as a key of `tenant` may see it (see [`scoped`]); all of it for
    /// `None`, the operator.
    pub fn encode_for(&self, tenant: Option<&str>) -> String {
        let all = self.encode();
        match tenant {
            Some(tenant) => scoped(&all, tenant),
            None => all,
        }
    }
}

/// Of an exposition, the samples labelled with `tenant`, and every descriptor line: a
/// tenant sees its own functions' series, not other tenants' nor the node-wide ones
/// (the engine's, the process's), which are the operator's.
pub fn scoped(exposition: &str, tenant: &str) -> String {
    let label = format!("tenant=\"{tenant}\"");
    let ours = |line: &str| {
        line.match_indices(&label).any(|(at, _)| {
            let before = line[..at].chars().next_back();
            let after = line[at + label.len()..].chars().next();
            matches!(before, Some('{' | ',')) && matches!(after, Some(',' | '}'))
        })
    };
    let mut out = String::with_capacity(exposition.len() / 2);
    for line in exposition.lines() {
        if line.starts_with('#') || ours(line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Node-wide values read at scrape time.
pub struct NodeCollector {
    pub runtime: Arc<Runtime>,
    /// The data plane's own threads (`--data-plane-threads`), if any.
    pub data_plane: Arc<crate::listener::ThreadsLoad>,
    pub log_lines_dropped: Arc<AtomicU64>,
    pub functions: Arc<dyn Fn() -> usize + Send + Sync>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl Into<f64>,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value.into());
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl Into<f64>,
) -> std::fmt::Result {
    let metric = ConstGauge::new(value.into());
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let stats = &self.runtime.stats;
        let e = &mut encoder;
        counter(
            e,
            "glint_compiles",
            "Components compiled on this node",
            None,
            stats.compiles.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            e,
            "glint_compile",
            "Time spent compiling components",
            Some(&Unit::Seconds),
            stats.compile_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )?;
        counter(
            e,
            "glint_compile_cache_loads",
            "Components mapped in from the compile cache",
            None,
            stats.cache_loads.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            e,
            "glint_instantiations",
            "Guest instances created",
            None,
            stats.instantiations.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            e,
            "glint_instance_reuses",
            "Requests served by a kept instance ([scaling] reuse = true)",
            None,
            stats.reuses.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            e,
            "glint_instances_idle",
            "Instances kept idle for reuse",
            None,
            self.runtime.idle_budget.idle() as f64,
        )?;
        counter(
            e,
            "glint_evictions",
            "Versions whose compiled code was dropped after sitting idle",
            None,
            stats.evictions.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            e,
            "glint_log_lines_dropped",
            "Guest log lines dropped because the log writer fell behind",
            None,
            self.log_lines_dropped.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            e,
            "glint_functions",
            "Functions routed on this node",
            None,
            (self.functions)() as f64,
        )?;
        if let Some(p) = process::read() {
            counter(
                e,
                "process_cpu",
                "User and system CPU time of the node process",
                Some(&Unit::Seconds),
                p.cpu_seconds,
            )?;
            gauge(
                e,
                "process_resident_memory",
                "Resident memory of the node process",
                Some(&Unit::Bytes),
                p.resident_bytes as f64,
            )?;
            gauge(
                e,
                "process_virtual_memory",
                "Virtual memory of the node process",
                Some(&Unit::Bytes),
                p.virtual_bytes as f64,
            )?;
            gauge(
                e,
                "process_open_fds",
                "Open file descriptors of the node process",
                None,
                p.open_fds as f64,
            )?;
            gauge(
                e,
                "process_threads",
                "Threads of the node process",
                None,
                p.threads as f64,
            )?;
            gauge(
                e,
                "process_start_time",
                "When the node process started, in seconds since the epoch",
                Some(&Unit::Seconds),
                p.start_time_seconds,
            )?;
        }
        let threads = self.data_plane.read();
        if !threads.is_empty() {
            let mut m = e.encode_descriptor(
                "glint_data_plane_connections",
                "Open connections on each of the data plane's own threads (--data-plane-threads), with the core it is pinned to (--data-plane-pin; \"none\" when not)",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (thread, reading) in threads.iter().enumerate() {
                m.encode_family(&thread_labels(thread, reading))?
                    .encode_gauge(&(reading.open as i64))?;
            }
            if threads.iter().any(|t| t.busy_polled.is_some()) {
                let mut m = e.encode_descriptor(
                    "glint_data_plane_busy_poll",
                    "Time each of the data plane's own threads spent in busy-poll windows with no read or write (--data-plane-busy-poll): polling instead of sleeping until the next packet, and whatever else it ran meanwhile",
                    Some(&Unit::Seconds),
                    prometheus_client::metrics::MetricType::Counter,
                )?;
                for (thread, reading) in threads.iter().enumerate() {
                    if let Some(polled) = reading.busy_polled {
                        ConstCounter::new(polled.as_secs_f64())
                            .encode(m.encode_family(&thread_labels(thread, reading))?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThreadLabels {
    thread: String,
    cpu: String,
}

fn thread_labels(thread: usize, reading: &crate::listener::ThreadReading) -> ThreadLabels {
    ThreadLabels {
        thread: thread.to_string(),
        cpu: reading
            .cpu
            .map_or_else(|| "none".to_string(), |c| c.to_string()),
    }
}

/// The process gauges Prometheus clients conventionally export, read from `/proc`.
/// Written here because no well-kept crate offers them for prometheus-client.
mod process {
    pub struct Process {
        pub cpu_seconds: f64,
        pub resident_bytes: u64,
        pub virtual_bytes: u64,
        pub open_fds: usize,
        pub threads: u64,
        pub start_time_seconds: f64,
    }

    #[cfg(target_os = "linux")]
    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        Some(Process {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            start_time_seconds: boot + field(22)? as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count(),
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Option<Process> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_sees_its_own_series_only() {
        let exposition = "# HELP glint_requests Requests.\n# TYPE glint_requests counter\n\
            glint_requests_total{tenant=\"acme\",function=\"f\"} 3\n\
            glint_requests_total{tenant=\"acme-2\",function=\"f\"} 4\n\
            glint_requests_total{function=\"g\",tenant=\"acme\"} 5\n\
            glint_requests_total{xtenant=\"acme\",tenant=\"b\"} 6\n\
            glint_process_resident_memory_bytes 100\n# EOF\n";
        assert_eq!(
            scoped(exposition, "acme"),
            "# HELP glint_requests Requests.\n# TYPE glint_requests counter\n\
             glint_requests_total{tenant=\"acme\",function=\"f\"} 3\n\
             glint_requests_total{function=\"g\",tenant=\"acme\"} 5\n# EOF\n"
        );
    }
}
