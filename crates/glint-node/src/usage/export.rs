//! The versions' meters as Prometheus sees them, added up at scrape time.
//!
//! `glint_requests_total` is per version; the other series are per function: the sum of
//! its versions, and of the versions it has had since the node started (so a counter
//! never goes back when a version is deleted). A deleted function's series go with it.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{FunctionKey, Ledger, Totals, duration_bounds, locked};
use crate::metrics::{FunctionLabels, RequestLabels, ResultLabels};

/// The collector of every version's meter.
pub struct Versions(pub std::sync::Arc<Ledger>);

impl std::fmt::Debug for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Versions")
    }
}

/// What a scrape shows of one function.
struct Function {
    labels: FunctionLabels,
    totals: Totals,
    /// Each version, with its requests by status class.
    versions: Vec<(String, [u64; 5])>,
}

impl Versions {
    fn read(&self) -> Vec<Function> {
        let functions = locked(&self.0.functions);
        let mut out: Vec<(&FunctionKey, Function)> = functions
            .iter()
            .filter_map(|(key, of)| {
                let mut totals = of.forgotten;
                let mut versions = Vec::new();
                let mut labels = None;
                for meter in of.versions.values() {
                    let t = meter.totals();
                    totals.add(&t);
                    versions.push((meter.version.clone(), t.by_class));
                    labels.get_or_insert_with(|| meter.labels.clone());
                }
                versions.sort();
                Some((
                    key,
                    Function {
                        labels: labels?,
                        totals,
                        versions,
                    },
                ))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out.into_iter().map(|(_, f)| f).collect()
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const OUTBOUND: [&str; 2] = ["allowed", "denied"];
const KV: [&str; 3] = ["ok", "denied", "error"];

impl Collector for Versions {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let functions = self.read();
        let e = &mut encoder;

        let mut m = e.encode_descriptor(
            "glint_requests",
            "Data-plane requests by function, version and status class",
            None,
            MetricType::Counter,
        )?;
        for f in &functions {
            for (version, by_class) in &f.versions {
                for (status, n) in CLASSES.iter().zip(by_class) {
                    let labels = RequestLabels {
                        tenant: f.labels.tenant.clone(),
                        function: f.labels.function.clone(),
                        version: version.clone(),
                        status,
                    };
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                }
            }
        }

        let bounds = duration_bounds();
        per_function(
            e,
            &functions,
            Describe(
                "glint_request_duration",
                "Time from a request's arrival to the end of its response body",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            ),
            |mut m, t| {
                let h = &t.duration;
                let buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(h.buckets).collect();
                m.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
            },
        )?;
        per_function(
            e,
            &functions,
            Describe(
                "glint_requests_in_flight",
                "Requests running in a guest now",
                None,
                MetricType::Gauge,
            ),
            |mut m, t| m.encode_gauge(&t.in_flight.max(0)),
        )?;
        per_function(
            e,
            &functions,
            Describe(
                "glint_requests_queued",
                "Requests waiting for a concurrency slot now",
                None,
                MetricType::Gauge,
            ),
            |mut m, t| m.encode_gauge(&t.queued.max(0)),
        )?;
        per_function(
            e,
            &functions,
            Describe(
                "glint_guest_memory_peak",
                "The largest linear memory any invocation of the function has had",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            ),
            |mut m, t| m.encode_gauge(&t.memory_peak),
        )?;
        per_function(
            e,
            &functions,
            Describe(
                "glint_guest_cpu",
                "Time guests spent running",
                Some(&Unit::Seconds),
                MetricType::Counter,
            ),
            |mut m, t| m.encode_counter::<NoLabelSet, _, u64>(&t.guest_cpu_seconds, None),
        )?;
        by_result(
            e,
            &functions,
            Describe(
                "glint_outbound_requests",
                "Outbound HTTP requests by result (allowed, denied)",
                None,
                MetricType::Counter,
            ),
            |t| OUTBOUND.into_iter().zip(t.outbound).collect(),
        )?;
        by_result(
            e,
            &functions,
            Describe(
                "glint_kv_operations",
                "KV calls by result (ok, denied, error)",
                None,
                MetricType::Counter,
            ),
            |t| KV.into_iter().zip(t.kv).collect(),
        )?;
        Ok(())
    }
}

/// A metric's name, help, unit and type.
struct Describe<'a>(&'a str, &'a str, Option<&'a Unit>, MetricType);

/// One series per function, written by `write` from the function's totals.
fn per_function(
    e: &mut DescriptorEncoder,
    functions: &[Function],
    Describe(name, help, unit, kind): Describe<'_>,
    write: impl Fn(MetricEncoder<'_>, &Totals) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, unit, kind)?;
    for f in functions {
        write(m.encode_family(&f.labels)?, &f.totals)?;
    }
    Ok(())
}

/// A counter per function and result, for the results that happened.
fn by_result(
    e: &mut DescriptorEncoder,
    functions: &[Function],
    Describe(name, help, unit, kind): Describe<'_>,
    counts: impl Fn(&Totals) -> Vec<(&'static str, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, unit, kind)?;
    for f in functions {
        for (result, n) in counts(&f.totals).into_iter().filter(|(_, n)| *n > 0) {
            let labels = ResultLabels {
                tenant: f.labels.tenant.clone(),
                function: f.labels.function.clone(),
                result,
            };
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
    }
    Ok(())
}
