//! What functions used and how they are doing: metered usage per period, recent request
//! statistics for the dashboard, and the Prometheus text at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use glint_store::{FunctionName, UsageRecord, now_ms};
use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::extract::{Json, Query};
use super::logs::parse_time;
use super::openapi::ErrorBody;
use crate::error::ApiError;
use crate::node::Node;
use crate::usage::{Summary, summarize};

/// The length of a usage bucket; months and weeks follow the calendar (UTC; weeks start
/// on Monday).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of the first day of the month that `days` falls in, and of the
/// month after, in the proleptic Gregorian calendar.
fn month_bounds(days: i64) -> (i64, i64) {
    let epoch = jiff::civil::date(1970, 1, 1);
    let Ok(date) = jiff::Span::new()
        .try_days(days)
        .and_then(|span| epoch.checked_add(span))
    else {
        // Outside jiff's years -9999..=9999, which no time here reaches (the API takes
        // 1970 to 9999): the day stands for its month.
        return (days, days + 1);
    };
    let first = days - i64::from(date.day() - 1);
    (first, first + i64::from(date.days_in_month()))
}

impl Period {
    /// The bucket `ms` falls in: its start and end, in epoch milliseconds (UTC).
    fn bucket(self, ms: i64) -> (i64, i64) {
        let fixed = |len: i64, offset: i64| {
            let start = (ms - offset).div_euclid(len) * len + offset;
            (start, start + len)
        };
        match self {
            Period::Minute => fixed(MINUTE, 0),
            Period::Hour => fixed(60 * MINUTE, 0),
            Period::Day => fixed(DAY, 0),
            // Weeks start on Monday; 1970-01-05 was one.
            Period::Week => fixed(7 * DAY, 4 * DAY),
            Period::Month => {
                let (first, next) = month_bounds(ms.div_euclid(DAY));
                (first * DAY, next * DAY)
            }
        }
    }

    /// The range a query with no `start` covers.
    fn default_span(self) -> i64 {
        match self {
            Period::Minute => 60 * MINUTE,
            Period::Hour => DAY,
            Period::Day => 30 * DAY,
            Period::Week => 12 * 7 * DAY,
            Period::Month => 365 * DAY,
        }
    }
}

/// Counters summed over a bucket, each also as a rate per second.
#[derive(Clone, Debug, Default, Serialize, PartialEq, ToSchema)]
pub struct Totals {
    pub start_ms: i64,
    pub end_ms: i64,
    pub requests: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub wall_ms: u64,
    pub cpu_ms: f64,
    pub gb_seconds: f64,
    pub requests_per_second: f64,
    pub errors_per_second: f64,
    pub bytes_in_per_second: f64,
    pub bytes_out_per_second: f64,
    pub wall_ms_per_second: f64,
    pub cpu_ms_per_second: f64,
    pub gb_seconds_per_second: f64,
}

impl Totals {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += r.requests;
        self.errors += r.errors;
        self.bytes_in += r.bytes_in;
        self.bytes_out += r.bytes_out;
        self.wall_ms += r.wall_ms;
        self.cpu_ms += r.cpu_us as f64 / 1000.0;
        // KiB·ms → GB·s.
        self.gb_seconds += r.memory_kib_ms as f64 * 1024.0 / 1e9 / 1000.0;
    }

    /// Fills in the rates over the part of the bucket that has passed.
    fn with_rates(mut self, now: i64) -> Self {
        let secs = ((self.end_ms.min(now) - self.start_ms) as f64 / 1000.0).max(1.0);
        self.requests_per_second = self.requests as f64 / secs;
        self.errors_per_second = self.errors as f64 / secs;
        self.bytes_in_per_second = self.bytes_in as f64 / secs;
        self.bytes_out_per_second = self.bytes_out as f64 / secs;
        self.wall_ms_per_second = self.wall_ms as f64 / secs;
        self.cpu_ms_per_second = self.cpu_ms / secs;
        self.gb_seconds_per_second = self.gb_seconds / secs;
        self
    }
}

/// The tenant's totals for this month and the month before it (UTC), this month first.
pub(crate) async fn recent_months(
    node: &Node,
    tenant: &glint_store::TenantId,
) -> Result<Vec<Totals>, ApiError> {
    let now = glint_store::now_ms();
    let (start, end) = Period::Month.bucket(now);
    let (before, _) = Period::Month.bucket(start - 1);
    let mut months = [(start, end), (before, start)].map(|(start_ms, end_ms)| Totals {
        start_ms,
        end_ms,
        ..Totals::default()
    });
    for record in node.store.usage(tenant, None, before, end).await? {
        months[usize::from(record.minute_ms < start)].add(&record);
    }
    Ok(months.into_iter().map(|t| t.with_rates(now)).collect())
}

/// Sums minute records into period buckets, oldest first, and the whole range.
pub fn aggregate(
    records: &[UsageRecord],
    period: Period,
    start_ms: i64,
    end_ms: i64,
    now: i64,
) -> (Vec<Totals>, Totals) {
    let mut buckets: Vec<Totals> = Vec::new();
    let mut total = Totals {
        start_ms,
        end_ms,
        ..Totals::default()
    };
    for r in records {
        let (start, end) = period.bucket(r.minute_ms);
        if buckets.last().is_none_or(|b| b.start_ms != start) {
            buckets.push(Totals {
                start_ms: start,
                end_ms: end,
                ..Totals::default()
            });
        }
        if let Some(b) = buckets.last_mut() {
            b.add(r);
        }
        total.add(r);
    }
    let buckets = buckets.into_iter().map(|b| b.with_rates(now)).collect();
    (buckets, total.with_rates(now))
}

impl std::str::FromStr for Period {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        serde_json::from_value(json!(s)).map_err(|_| {
            ApiError::bad_request(
                "invalid_period",
                format!("period {s:?} is invalid; use minute, hour, day, week or month"),
            )
        })
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this function's usage.
    function: Option<String>,
    /// `hour` unless given.
    #[param(value_type = Option<Period>)]
    period: Option<String>,
    /// From: epoch milliseconds, or a duration back from now (`90s`, `10m`, `2h`, `1d`);
    /// a span of buckets back from `end` unless given.
    start: Option<String>,
    /// Until: as `start`; now unless given.
    end: Option<String>,
}

/// Metered usage in buckets of a period, with the totals.
#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    pub function: Option<FunctionName>,
    pub period: Period,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The buckets that saw use, oldest first.
    pub buckets: Vec<Totals>,
    pub totals: Totals,
    /// Each region's share, where the store says which region served what.
    pub regions: Vec<RegionUsage>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionUsage {
    pub region: String,
    pub totals: Totals,
}

/// What the tenant's functions used: requests, errors, bytes, wall and CPU time, and
/// GB-seconds, in buckets of a period.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "The usage", body = UsageReport),
        (status = 400, description = "A parameter is invalid; the code says which", body = ErrorBody),
        (status = 404, description = "No such function (`function_not_found`)", body = ErrorBody),
    ),
)]
pub async fn usage(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let function: Option<FunctionName> = q.function.as_deref().map(str::parse).transpose()?;
    if let Some(f) = &function {
        node.store.function(&caller.tenant, f).await?;
    }
    let period = q.period.as_deref().unwrap_or("hour").parse::<Period>()?;
    let now = now_ms();
    let end = q
        .end
        .as_deref()
        .map(|t| parse_time("end", t))
        .transpose()?
        .unwrap_or(now);
    let start = match q.start.as_deref() {
        Some(t) => parse_time("start", t)?,
        None => end.saturating_sub(period.default_span()),
    };
    // Whole buckets: a range that starts mid-hour still counts that hour's first minutes.
    let (start, _) = period.bucket(start);
    let records = node
        .store
        .usage(&caller.tenant, function.as_ref(), start, end)
        .await?;
    let mut sorted = records;
    sorted.sort_by_key(|r| r.minute_ms);
    let (buckets, totals) = aggregate(&sorted, period, start, end, now);
    // Each region's share, where the store says which region served what.
    let mut by_region: BTreeMap<&str, Vec<UsageRecord>> = BTreeMap::new();
    for r in sorted.iter().filter(|r| !r.region.is_empty()) {
        by_region.entry(&r.region).or_default().push(r.clone());
    }
    let regions = by_region
        .iter()
        .map(|(region, records)| {
            let (_, totals) = aggregate(records, period, start, end, now);
            RegionUsage {
                region: region.to_string(),
                totals,
            }
        })
        .collect();
    Ok(Json(UsageReport {
        function,
        period,
        start_ms: start,
        end_ms: end,
        buckets,
        totals,
        regions,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Seconds back from now, 1 to 3600 (300 unless given).
    window: Option<u64>,
}

/// Each function's recent requests on this node.
#[derive(Serialize, ToSchema)]
pub struct StatsReport {
    pub window_seconds: u64,
    pub functions: Vec<FunctionStats>,
}

#[derive(Serialize, ToSchema)]
pub struct FunctionStats {
    pub name: FunctionName,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Each function's recent requests on this node: rates, errors, latency percentiles and
/// CPU, for the dashboard.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "usage",
    params(StatsQuery),
    responses((status = 200, description = "The statistics", body = StatsReport)),
)]
pub async fn stats(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<StatsQuery>,
) -> Result<Json<StatsReport>, ApiError> {
    let window = Duration::from_secs(q.window.unwrap_or(300).clamp(1, 3600));
    let since = now_ms() - window.as_millis() as i64;
    let routes = node.routes.load();
    let mut functions = Vec::new();
    for entry in routes.functions().filter(|f| f.tenant == caller.tenant) {
        let recent = node.meter.recent(&entry.tenant, &entry.name);
        let summary = summarize(
            &recent.requests_since(since),
            &recent.cpu_since(since),
            window,
        );
        functions.push(FunctionStats {
            name: entry.name.clone(),
            summary,
        });
    }
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(StatsReport {
        window_seconds: window.as_secs(),
        functions,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// The function.
    #[param(value_type = FunctionName)]
    function: String,
    /// Seconds back from now, 60 to 3600 (3600 unless given).
    window: Option<u64>,
    /// Seconds per point, 1 to 3600 (60 unless given).
    step: Option<u64>,
}

/// One function's recent requests on this node, in steps.
#[derive(Serialize, ToSchema)]
pub struct Series {
    pub function: FunctionName,
    pub step_seconds: i64,
    pub points: Vec<SeriesPoint>,
}

#[derive(Serialize, ToSchema)]
pub struct SeriesPoint {
    pub start_ms: i64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One function's recent requests on this node in steps, for charts.
#[utoipa::path(
    get,
    path = "/api/v1/stats/series",
    tag = "usage",
    params(SeriesQuery),
    responses(
        (status = 200, description = "The series", body = Series),
        (status = 400, description = "The name is invalid (`invalid_name`)", body = ErrorBody),
        (status = 404, description = "No such function (`function_not_found`)", body = ErrorBody),
    ),
)]
pub async fn series(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<Series>, ApiError> {
    let name: FunctionName = q.function.parse()?;
    node.store.function(&caller.tenant, &name).await?;
    let window = q.window.unwrap_or(3600).clamp(60, 3600) as i64 * 1000;
    let step = q.step.unwrap_or(60).clamp(1, 3600) as i64 * 1000;
    let now = now_ms();
    let first = (now - window).div_euclid(step) * step;
    let samples = node
        .meter
        .recent(&caller.tenant, &name)
        .requests_since(first);
    let mut points = Vec::new();
    let mut start = first;
    while start <= now {
        let in_step: Vec<_> = samples
            .iter()
            .filter(|s| s.ts_ms >= start && s.ts_ms < start + step)
            .copied()
            .collect();
        let s = summarize(&in_step, &[], Duration::from_millis(step as u64));
        points.push(SeriesPoint {
            start_ms: start,
            requests: s.requests,
            errors: s.errors,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
        });
        start += step;
    }
    Ok(Json(Series {
        function: name,
        step_seconds: step / 1000,
        points,
    }))
}

/// This node's metrics, in the OpenMetrics text format Prometheus scrapes: the
/// caller's tenant's functions' series; the operator's key also sees the node-wide ones
/// and every tenant's.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "usage",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")),
)]
pub async fn metrics(State(node): State<Arc<Node>>, caller: Caller) -> impl IntoResponse {
    // The operator sees the node; any other key its own tenant's functions.
    let scope = (caller.role < glint_store::Role::Operator).then_some(caller.tenant.as_str());
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.meter.metrics.encode_for(scope),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_31_2026_NOON: i64 = 1_769_860_800_000;

    #[test]
    fn buckets_follow_the_calendar() {
        let (start, end) = Period::Month.bucket(JAN_31_2026_NOON);
        assert_eq!(start, 1_767_225_600_000); // 2026-01-01
        assert_eq!(end, 1_769_904_000_000); // 2026-02-01
        let (start, end) = Period::Month.bucket(end + 1);
        assert_eq!(end - start, 28 * DAY, "February 2026 has 28 days");
        let leap = Period::Month.bucket(1_709_208_000_000); // 2024-02-29 12:00
        assert_eq!(leap.1 - leap.0, 29 * DAY);
        let (start, _) = Period::Week.bucket(JAN_31_2026_NOON); // a Saturday
        assert_eq!(start, 1_769_385_600_000); // Monday 2026-01-26
        assert_eq!(
            Period::Hour.bucket(JAN_31_2026_NOON + 59 * MINUTE).0,
            JAN_31_2026_NOON
        );
    }

    #[test]
    fn minutes_sum_into_buckets_with_rates() {
        let record = |minute_ms, requests| UsageRecord {
            function: "f".parse().unwrap(),
            version: glint_store::VersionId(1),
            minute_ms,
            requests,
            errors: 1,
            bytes_in: 10,
            bytes_out: 20,
            wall_ms: 30,
            cpu_us: 4000,
            memory_kib_ms: 1_000_000,
            region: String::new(),
        };
        let h = JAN_31_2026_NOON;
        let records = [
            record(h, 60),
            record(h + MINUTE, 60),
            record(h + 60 * MINUTE, 36),
        ];
        let (buckets, total) = aggregate(
            &records,
            Period::Hour,
            h,
            h + 120 * MINUTE,
            h + 120 * MINUTE,
        );
        assert_eq!(buckets.len(), 2);
        assert_eq!((buckets[0].requests, buckets[1].requests), (120, 36));
        assert_eq!(buckets[0].requests_per_second, 120.0 / 3600.0);
        assert_eq!(buckets[1].cpu_ms, 4.0);
        assert_eq!(total.requests, 156);
        assert_eq!(total.errors, 3);
        assert!((total.gb_seconds - 3.0 * 1.024e-3).abs() < 1e-12);
    }
}
