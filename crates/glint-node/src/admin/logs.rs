//! Guest log lines through the admin API: a filtered read, and live follow over
//! Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use glint_store::{FunctionName, Level, LogQuery, LogRecord, TenantId, VersionId, now_ms};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::extract::{Json, Path, Query};
use super::functions::{FunctionErrors, FunctionPath};
use super::openapi::ErrorBody;
use crate::error::ApiError;
use crate::node::Node;

/// With no time range, a read covers the last hour.
const DEFAULT_RANGE_MS: i64 = 3_600_000;

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this function's lines (on `/api/v1/logs`).
    pub function: Option<String>,
    /// Only this version's: `v3` or `3`.
    pub version: Option<String>,
    /// How many lines, 1 to 10000 (100 unless given).
    pub lines: Option<usize>,
    /// Epoch milliseconds, or a duration back from now (`90s`, `10m`, `2h`, `1d`).
    pub start: Option<String>,
    /// The same as `start`; the CLI's `--since`.
    pub since: Option<String>,
    /// Before this time: epoch milliseconds, or a duration back from now.
    pub end: Option<String>,
    /// Oldest lines first instead of the newest.
    #[serde(default)]
    pub asc: bool,
    /// Only one invocation's lines.
    pub execution_id: Option<String>,
    /// This level and above: `trace`, `debug`, `info`, `warn` or `error`.
    pub level: Option<String>,
    /// Only lines from nodes of this region.
    pub region: Option<String>,
    /// Only lines from this node.
    pub node: Option<String>,
}

/// Log lines, in time order: the newest that match, or the oldest with `asc`.
#[derive(Serialize, ToSchema)]
pub struct LogLines {
    pub lines: Vec<LogRecord>,
}

/// `10m` → that long ago, in epoch milliseconds; plain digits are epoch milliseconds.
pub fn parse_time(key: &str, text: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_time",
            format!(
                "{key} {text:?} is invalid; use a duration back from now such as 30s, 10m, 2h or 1d, or epoch milliseconds"
            ),
        )
    };
    if let Ok(epoch_ms) = text.parse::<i64>() {
        // 1970 to the end of year 9999: arithmetic on the bounds can then never overflow.
        if !(0..=MAX_EPOCH_MS).contains(&epoch_ms) {
            return Err(ApiError::bad_request(
                "invalid_time",
                format!(
                    "{key} {text} is out of range; epoch milliseconds run from 0 to {MAX_EPOCH_MS} (year 9999)"
                ),
            ));
        }
        return Ok(epoch_ms);
    }
    let back = duration_back(text).ok_or_else(bad)?;
    Ok(now_ms()
        .saturating_sub(i64::try_from(back.as_millis()).unwrap_or(i64::MAX))
        .max(0))
}

/// A duration back from now, as humantime reads it (`90s`, `10m`, `2h 30m`, `1d`), but
/// in none of its months or years: they are averages (30.44 and 365.25 days), so a time
/// back in them would be off by hours. A count too large for any clock saturates.
fn duration_back(text: &str) -> Option<Duration> {
    let averaged = text.split(|c: char| !c.is_alphabetic()).any(|unit| {
        matches!(
            unit,
            "M" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years"
        )
    });
    if averaged {
        return None;
    }
    // humantime panics when parts that each fit add up past `Duration::MAX`
    // (`18446744073709551615s1000ms`), and a panic cannot be caught where panics abort
    // (the fuzzer): such a sum is a count too large too, so it saturates first.
    if upper_bound_secs(text) >= u128::from(u64::MAX) {
        return Some(Duration::MAX);
    }
    match humantime::parse_duration(text) {
        Ok(back) => Some(back),
        // humantime says NumberOverflow for a count too large, and for a fraction finer
        // than a nanosecond; only the first is far back.
        Err(humantime::DurationError::NumberOverflow) if !text.contains('.') => Some(Duration::MAX),
        Err(_) => None,
    }
}

/// At least the seconds that `text` can add up to, whichever way humantime reads it: each
/// run of digits as a whole number of the unit after it, or of years where that is no
/// unit known here (humantime then refuses the text, or its unit is smaller).
fn upper_bound_secs(text: &str) -> u128 {
    let mut total: u128 = 0;
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        rest = &rest[start..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        // Past 39 digits a number is past u128; humantime says NumberOverflow for it.
        let count: u128 = rest[..digits].parse().unwrap_or(u128::MAX);
        rest = &rest[digits..];
        let unit_start = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
        let unit_start = unit_start.trim_start();
        let unit_len = unit_start
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(unit_start.len());
        let per_unit: u128 = match &unit_start[..unit_len] {
            "ns" | "nsec" | "us" | "usec" | "µs" | "ms" | "msec" | "millis" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            "w" | "wk" | "wks" | "week" | "weeks" => 604_800,
            _ => 31_557_600,
        };
        // One more of the unit covers the fraction after a point, if any.
        total = total.saturating_add(count.saturating_add(1).saturating_mul(per_unit));
    }
    total
}

/// 9999-12-31T23:59:59.999Z.
const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

fn level(text: Option<&str>) -> Result<Option<Level>, ApiError> {
    Ok(text.map(str::parse::<Level>).transpose()?)
}

impl LogsQuery {
    fn into_query(self, function: Option<FunctionName>) -> Result<LogQuery, ApiError> {
        let function = match (function, &self.function) {
            (Some(f), _) => Some(f),
            (None, Some(name)) => Some(name.parse()?),
            (None, None) => None,
        };
        let start = self.start.or(self.since);
        let since_ms = start
            .as_deref()
            .map(|t| parse_time("start", t))
            .transpose()?;
        let until_ms = self
            .end
            .as_deref()
            .map(|t| parse_time("end", t))
            .transpose()?;
        let since_ms = match (since_ms, until_ms) {
            (None, None) => Some(now_ms() - DEFAULT_RANGE_MS),
            (None, Some(end)) => Some(end.saturating_sub(DEFAULT_RANGE_MS)),
            (since, _) => since,
        };
        Ok(LogQuery {
            function,
            version: self
                .version
                .as_deref()
                .map(str::parse::<VersionId>)
                .transpose()?,
            execution_id: self.execution_id,
            since_ms,
            until_ms,
            min_level: level(self.level.as_deref())?,
            node: self.node,
            region: self.region,
            lines: self.lines.unwrap_or(100).clamp(1, 10_000),
            oldest_first: self.asc,
        })
    }
}

/// The tenant's log lines, filtered; the last hour's unless a range is given.
#[utoipa::path(
    get,
    path = "/api/v1/logs",
    tag = "logs",
    params(LogsQuery),
    responses(
        (status = 200, description = "The lines", body = LogLines),
        (status = 400, description = "A filter is invalid; the code says which", body = ErrorBody),
    ),
)]
pub async fn tenant_logs(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogLines>, ApiError> {
    let query = q.into_query(None)?;
    let lines = node.store.logs(&caller.tenant, query).await?;
    Ok(Json(LogLines { lines }))
}

/// One function's log lines, filtered; the last hour's unless a range is given.
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/logs",
    tag = "logs",
    params(FunctionPath, LogsQuery),
    responses(
        (status = 200, description = "The lines", body = LogLines),
        FunctionErrors,
    ),
)]
pub async fn function_logs(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(FunctionPath { name }): Path<FunctionPath>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogLines>, ApiError> {
    let name: FunctionName = name.parse()?;
    node.store.function(&caller.tenant, &name).await?;
    let query = q.into_query(Some(name))?;
    let lines = node.store.logs(&caller.tenant, query).await?;
    Ok(Json(LogLines { lines }))
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowQuery {
    /// Only this function's lines.
    pub function: Option<String>,
    /// Only this version's: `v3` or `3`.
    pub version: Option<String>,
    /// This level and above: `trace`, `debug`, `info`, `warn` or `error`.
    pub level: Option<String>,
    /// Only one invocation's lines.
    pub execution_id: Option<String>,
}

/// What a live follower wants to see.
struct Follow {
    tenant: TenantId,
    function: Option<FunctionName>,
    version: Option<VersionId>,
    min_level: Option<Level>,
    execution_id: Option<String>,
    /// This node's identity, stamped on each line sent.
    node: Arc<str>,
    region: Arc<str>,
}

impl Follow {
    fn wants(&self, l: &LogRecord) -> bool {
        l.tenant == self.tenant
            && self.function.as_ref().is_none_or(|f| *f == l.function)
            && self.version.is_none_or(|v| v == l.version)
            && self.min_level.is_none_or(|m| l.level >= m)
            && self
                .execution_id
                .as_ref()
                .is_none_or(|e| *e == l.execution_id)
    }
}

/// `GET /api/v1/logs/stream`: lines as they are written, as Server-Sent Events. Each
/// event's data is one line's JSON; a follower that falls behind gets a `skipped` event
/// saying how many lines it missed.
#[utoipa::path(
    get,
    path = "/api/v1/logs/stream",
    tag = "logs",
    params(FollowQuery),
    responses(
        (status = 200, description = "Server-Sent Events until the client goes or its key is revoked: each \
            unnamed event's data is a log line's JSON (LogRecord); `skipped` says how many lines a slow \
            follower missed; `revoked` ends the stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A filter is invalid; the code says which", body = ErrorBody),
    ),
)]
pub async fn follow(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<FollowQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let follow = Follow {
        tenant: caller.tenant,
        function: q.function.as_deref().map(str::parse).transpose()?,
        version: q.version.as_deref().map(str::parse).transpose()?,
        min_level: level(q.level.as_deref())?,
        execution_id: q.execution_id,
        node: node.node_id.clone(),
        region: node.region.clone(),
    };
    let rx = node.logs.follow();
    // The key is checked again each second: revoking it ends the stream within one.
    let mut recheck = tokio::time::interval(Duration::from_secs(1));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Some((rx, follow, recheck));
    let key_id = caller.key_id;
    let stream = futures::stream::unfold(state, move |state| {
        let (node, key_id) = (node.clone(), key_id.clone());
        async move {
            let (mut rx, follow, mut recheck) = state?;
            loop {
                let received = tokio::select! {
                    received = rx.recv() => received,
                    _ = recheck.tick() => {
                        if node.keys.is_live(&key_id) {
                            continue;
                        }
                        let end = Event::default()
                            .event("revoked")
                            .data("the API key of this stream was revoked");
                        return Some((Ok::<_, Infallible>(end), None));
                    }
                };
                let event = match received {
                    Ok(line) if follow.wants(&line) => {
                        let mut line = (*line).clone();
                        line.node = follow.node.to_string();
                        line.region = follow.region.to_string();
                        Event::default().data(serde_json::to_string(&line).unwrap_or_default())
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("skipped").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), Some((rx, follow, recheck))));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_durations_and_epoch_millis() {
        let now = now_ms();
        let ten_minutes_ago = parse_time("start", "10m").unwrap();
        assert!((now - 600_000 - ten_minutes_ago).abs() < 5_000);
        assert_eq!(
            parse_time("start", "1700000000000").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("start", "99999999999999999d").unwrap(),
            0,
            "huge durations saturate at the epoch, not panic"
        );
        assert_eq!(
            parse_time("start", "18446744073709551615s1000ms").unwrap(),
            0,
            "parts that add up past Duration::MAX saturate too (found by fuzzing)"
        );
        for out_of_range in [i64::MIN.to_string(), "-1".into(), i64::MAX.to_string()] {
            let e = parse_time("end", &out_of_range).unwrap_err();
            assert_eq!(e.code, "invalid_time", "{out_of_range}");
        }
        assert!(parse_time("start", "ten").is_err());
        assert!(parse_time("end", "5y").unwrap_err().message.contains("end"));
    }

    #[test]
    fn durations_read_as_humantime_without_its_averaged_months_and_years() {
        let ago = |text| now_ms() - parse_time("start", text).unwrap();
        assert!((ago("2h 30m") - 9_000_000).abs() < 5_000);
        assert!((ago("1.5h") - 5_400_000).abs() < 5_000);
        assert!((ago("1w") - 7 * 86_400_000).abs() < 5_000);
        for averaged in ["3M", "1month", "2 years", "1d 1y"] {
            assert!(parse_time("start", averaged).is_err(), "{averaged}");
        }
        assert!(
            parse_time("start", "1.5ns").is_err(),
            "a fraction of a nanosecond is no far-back time"
        );
    }

    #[test]
    fn no_range_means_the_last_hour() {
        let q = LogsQuery::default().into_query(None).unwrap();
        let since = q.since_ms.unwrap();
        assert!((now_ms() - DEFAULT_RANGE_MS - since).abs() < 5_000);
        assert_eq!(q.until_ms, None);
    }
}
