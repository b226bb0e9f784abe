//! The data plane: where a user's HTTP request becomes a guest invocation.
//!
//! `/<route>/...` runs the function's `latest` alias, and
//! `POST /api/faas/v1/execute/<fn>[/<version-or-alias>]` is the PhotonIQ-style form. The
//! path is resolved in memory, a version is picked by weight, the body is read up to the
//! function's limit, and the guest runs in a fresh sandbox. Every response carries
//! `x-glint-execution-id`, the id on each of the invocation's log lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glint_runtime::{GuestResponse, HttpStyle, Invocation};
use glint_store::{FunctionName, LATEST_ALIAS, StoreError, VersionId};
use http::header::{CONTENT_LENGTH, COOKIE, HOST, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited, combinators::UnsyncBoxBody};
use hyper::body::{Body as _, Incoming};

use crate::error::ApiError;
use crate::listener::Connection;
use crate::logs::{ExecutionId, InvocationLog};
use crate::node::Node;
use crate::routes::{FunctionEntry, HostTarget, VersionSlot, host_target};
use crate::tenants::{Slots, TenantRuntime};
use crate::usage::VersionMeter;

pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub const EXECUTION_ID: &str = "x-glint-execution-id";
const EXECUTE_PREFIX: &str = "/api/faas/v1/execute/";

pub fn error_response(e: &ApiError) -> Response<Body> {
    e.json_response()
        .map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

/// What a request arrived with: its connection and the execution id it was given.
struct Arrival {
    connection: Connection,
    execution_id: ExecutionId,
}

/// Serves one data-plane request. Never fails: errors become JSON responses.
pub async fn serve(
    node: Arc<Node>,
    connection: Connection,
    req: Request<Incoming>,
) -> Response<Body> {
    let arrival = Arrival {
        connection,
        execution_id: ExecutionId::generate(),
    };
    let mut resp = match dispatch(&node, req, &arrival).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if let Ok(v) = HeaderValue::from_str(arrival.execution_id.as_str()) {
        resp.headers_mut().insert(EXECUTION_ID, v);
    }
    resp
}

async fn dispatch(
    node: &Node,
    req: Request<Incoming>,
    arrival: &Arrival,
) -> Result<Response<Body>, ApiError> {
    let routes = node.routes.load();
    let path = req.uri().path();
    let query = req.uri().query();
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let tenant = match host_target(host, node.base_domain.as_deref()) {
        HostTarget::Function { tenant, name } => {
            // The function's own host: every path is the function's.
            let Some(entry) = routes.function(&tenant, &name) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "function_not_found",
                    format!(
                        "no function '{name}' of tenant '{tenant}' answers on this host; `glint list` shows the functions"
                    ),
                ));
            };
            let slot = select_alias(entry, LATEST_ALIAS)?.clone();
            let entry = entry.clone();
            drop(routes);
            let target = Target {
                path: guest_path(path, query),
                by_route: false,
                connection: arrival.connection,
            };
            return run(node, &entry, slot, req, target, arrival).await;
        }
        HostTarget::Tenant(tenant) => tenant,
    };

    if let Some(rest) = path.strip_prefix(EXECUTE_PREFIX) {
        if req.method() != Method::POST {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the execute endpoint takes POST; send the request body as the function's input",
            ));
        }
        let (name, selector) = match rest.split_once('/') {
            Some((n, s)) => (n, Some(s.trim_end_matches('/'))),
            None => (rest, None),
        };
        let Some(entry) = routes.function(&tenant, name) else {
            // Only a miss pays for parsing, to tell a bad name from an unknown one.
            let name: FunctionName = name.parse()?;
            return Err(StoreError::FunctionNotFound(name).into());
        };
        let slot = select(
            entry,
            selector.filter(|s| !s.is_empty()).unwrap_or(LATEST_ALIAS),
        )?
        .clone();
        let entry = entry.clone();
        drop(routes);
        // As if by the function's route, as it always was.
        let target = Target {
            path: guest_path("", query),
            by_route: true,
            connection: arrival.connection,
        };
        return run(node, &entry, slot, req, target, arrival).await;
    }

    let (entry, rest) = routes.resolve(&tenant, path).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("no function is routed at {path}; `glint list` shows the routes"),
        )
    })?;
    let target = Target {
        path: guest_path(rest, query),
        by_route: true,
        connection: arrival.connection,
    };
    let slot = select_alias(entry, LATEST_ALIAS)?.clone();
    let entry = entry.clone();
    drop(routes);
    run(node, &entry, slot, req, target, arrival).await
}

/// What a request's guest sees of its path.
struct Target {
    /// The path and query the guest gets.
    path: String,
    /// Came by one of the function's routes (or the execute endpoint), whose prefix the
    /// guest is told (`x-forwarded-prefix`, Spin's route headers); else by the
    /// function's own host, with no prefix.
    by_route: bool,
    /// The client's connection (Spin's guests are told its address).
    connection: Connection,
}

/// The request body, up to `max` bytes, within `--body-read-timeout`.
async fn read_body(
    node: &Node,
    body: Incoming,
    max: u64,
    too_large: impl Fn() -> ApiError,
) -> Result<Bytes, ApiError> {
    let reading = Limited::new(body, max as usize).collect();
    match tokio::time::timeout(node.body_read_timeout, reading).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s; send it faster, or raise the node's --body-read-timeout",
                node.body_read_timeout.as_secs()
            ),
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Ok(Err(e)) => Err(ApiError::bad_request(
            "body_read_failed",
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// A request as Spin's HTTP trigger shapes it: the whole path for the guest (returned),
/// and the `spin-*` headers that say how it was routed. A Glint route is a prefix, so it
/// is the Spin route `<route>/...`.
fn spin_request(
    parts: &mut http::request::Parts,
    route: &str,
    host: &str,
    connection: Connection,
) -> String {
    let full = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let path = parts.uri.path();
    let path_info = path.strip_prefix(route).unwrap_or(path).to_string();
    let scheme = if connection.tls { "https" } else { "http" };
    let matched = format!("{route}/...");
    let headers = [
        ("spin-full-url", format!("{scheme}://{host}{full}")),
        ("spin-path-info", path_info),
        ("spin-matched-route", matched.clone()),
        ("spin-raw-component-route", matched),
        ("spin-component-route", route.to_string()),
        ("spin-base-path", "/".to_string()),
        ("spin-client-addr", connection.peer.to_string()),
    ];
    for (name, value) in headers {
        // A client's own spin-* header never reaches the guest as if Glint had set it.
        parts.headers.remove(name);
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, value);
        }
    }
    full
}

/// Browsers send a cookie to every port of its host, so the dashboard's session cookie
/// would reach guests on the data plane; it never does.
fn strip_session_cookie(headers: &mut http::HeaderMap) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !crate::session::is_session_pair(pair))
        .map(str::to_string)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(COOKIE, v);
    }
}

/// A guest shares its host with the dashboard, and cookies ignore ports: a guest that
/// sets Glint's session cookie could sign a visitor's browser into the dashboard with a
/// key of its choosing (cookie tossing). Such a `Set-Cookie` never leaves the node.
fn strip_glint_cookies(headers: &mut http::HeaderMap) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| !crate::session::sets_session_cookie(v.as_bytes()))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for v in kept {
        headers.append(SET_COOKIE, v);
    }
}

/// The URI the guest sees: `http://`, the request's host, and its path (taken, not
/// copied).
fn guest_uri(host: String, path: String) -> Result<Uri, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request("bad_uri", format!("cannot form the guest's URI: {e}"))
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority =
        Some(http::uri::Authority::from_maybe_shared(Bytes::from(host)).map_err(|e| bad(&e))?);
    parts.path_and_query =
        Some(http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path)).map_err(|e| bad(&e))?);
    Uri::from_parts(parts).map_err(|e| bad(&e))
}

/// The path and query the guest sees: what follows its route, `/` at the least.
fn guest_path(rest: &str, query: Option<&str>) -> String {
    let rest = if rest.is_empty() { "/" } else { rest };
    let mut out = String::with_capacity(rest.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(rest);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A version by number (`v3`, `3`) or by alias (`latest`, `canary`).
fn select<'e>(entry: &'e FunctionEntry, selector: &str) -> Result<&'e Arc<VersionSlot>, ApiError> {
    if selector != LATEST_ALIAS
        && let Ok(v) = selector.parse::<VersionId>()
    {
        return entry.versions.get(&v).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "version_not_found",
                format!(
                    "function '{}' has no version '{v}'; `glint info {}` lists them",
                    entry.name, entry.name
                ),
            )
        });
    }
    select_alias(entry, selector)
}

/// A version by alias, picked by the alias's weights.
fn select_alias<'e>(
    entry: &'e FunctionEntry,
    selector: &str,
) -> Result<&'e Arc<VersionSlot>, ApiError> {
    entry.alias(selector).map(|a| a.pick()).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "alias_not_found",
            format!(
                "function '{}' has no alias '{selector}' with a live version; `glint info {}` lists its aliases",
                entry.name, entry.name
            ),
        )
    })
}

/// Runs the request in the version's guest and meters it: from arrival to the end of the
/// response body, whatever the outcome.
async fn run(
    node: &Node,
    entry: &FunctionEntry,
    slot: Arc<VersionSlot>,
    req: Request<Incoming>,
    target: Target,
    arrival: &Arrival,
) -> Result<Response<Body>, ApiError> {
    let tenant = node.tenants.admit(&entry.tenant)?;
    let log = Arc::new(InvocationLog {
        context: slot.log_context.clone(),
        execution_id: arrival.execution_id,
    });
    let mut timer = RequestTimer {
        log,
        started: Instant::now(),
        status: 500,
        bytes_in: 0,
        bytes_out: 0,
    };
    let ran = invoke(
        node,
        entry,
        tenant.as_deref(),
        &slot,
        req,
        target,
        &mut timer,
    )
    .await;
    match ran {
        Err(e) => {
            timer.status = e.status.as_u16();
            Err(e)
        }
        Ok(mut response) => {
            timer.status = response.status().as_u16();
            strip_glint_cookies(response.headers_mut());
            // The timer lives as long as the body, which streams while the guest still
            // runs.
            let (parts, body) = response.into_parts();
            let mut body = TimedBody {
                body,
                timer,
                ahead: std::collections::VecDeque::new(),
                ended: false,
            };
            body.gather().await;
            Ok(Response::from_parts(parts, body.boxed_unsync()))
        }
    }
}

/// Counts a request from arrival to the end of its response body, then reports it to
/// its version's meter; held by the response body so streaming time counts.
struct RequestTimer {
    log: Arc<InvocationLog>,
    started: Instant,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.log.context.meter.request_finished(
            self.status,
            self.bytes_in,
            self.bytes_out,
            self.started.elapsed(),
        );
    }
}

/// Counts the request in its version's `glint_requests_queued` while it waits.
struct Queued<'a>(&'a VersionMeter);

impl<'a> Queued<'a> {
    fn count(meter: &'a VersionMeter) -> Self {
        meter.add_queued(1);
        Self(meter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.add_queued(-1);
    }
}

/// Counts the request in its version's `glint_requests_in_flight` while its guest runs
/// (it goes with the guest's task). It holds the request's own log, not the version's
/// meter, so a request adds to no count shared with other cores to hold it.
struct InFlight(Arc<InvocationLog>);

impl InFlight {
    fn count(log: &Arc<InvocationLog>) -> Self {
        log.context.meter.add_in_flight(1);
        Self(log.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.context.meter.add_in_flight(-1);
    }
}

/// A place among the tenant's instances on this node: at once, or within the
/// function's queue time, else `429 quota_exceeded`.
async fn tenant_slot(
    slots: &Slots,
    entry: &FunctionEntry,
    queue_timeout: Duration,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    if let Ok(permit) = slots.free.clone().try_acquire_owned() {
        return Ok(permit);
    }
    match tokio::time::timeout(queue_timeout, slots.free.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            let mut e = ApiError::quota(
                "instances_per_node",
                format!(
                    "tenant '{}' runs {} instances at once on this node, its quota \
                     (instances_per_node), and none finished in time; retry shortly, or ask \
                     the operator to raise it",
                    entry.tenant, slots.limit
                ),
            );
            e.status = StatusCode::TOO_MANY_REQUESTS;
            e.retry_after = Some(1);
            Err(e)
        }
    }
}

/// A concurrency permit within the queue time; the request counts as queued meanwhile.
async fn wait_for_permit(
    slot: &VersionSlot,
    queue_timeout: Duration,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let _queued = Queued::count(&slot.meter);
    let waiting = slot.concurrency.clone().acquire_owned();
    tokio::time::timeout(queue_timeout, waiting)
        .await
        .ok()?
        .ok()
}

/// A frame of a guest's response body, as the guest's body gives it.
type GuestFrame =
    Result<http_body::Frame<Bytes>, <glint_runtime::GuestBody as http_body::Body>::Error>;

/// A guest's response body, counted by the request's timer until it ends.
struct TimedBody {
    body: glint_runtime::GuestBody,
    timer: RequestTimer,
    /// Frames taken from the guest before the response was handed to hyper.
    ahead: std::collections::VecDeque<GuestFrame>,
    /// The guest's body has ended (after the frames ahead).
    ended: bool,
}

/// How much of a response body is gathered before its head goes out.
const GATHER_BYTES: usize = 16 * 1024;
/// How many turns of the scheduler a response waits for more of its body, at most
/// (measured with 0, 1, 2 and 4: bench/RESULTS.md, "WASI 0.3: gathering the response").
const GATHER_TURNS: usize = 2;

impl TimedBody {
    /// Takes what the guest has of its body, letting its instance run a few turns more,
    /// so that a small response leaves in one write: head, body and end together. The
    /// guest hands over each chunk, and then the end, as its instance runs, which is
    /// after hyper has sent the head if the response goes to hyper at once (measured:
    /// 1.7 sends a response instead of 1). A body still coming after those turns, or
    /// beyond [`GATHER_BYTES`], streams as it comes; no timer is involved.
    async fn gather(&mut self) {
        let (mut turns, mut bytes) = (0, 0);
        while !self.ended && bytes < GATHER_BYTES {
            if self.body.is_end_stream() {
                self.ended = true;
                break;
            }
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::pin::Pin::new(&mut self.body).poll_frame(cx))
            })
            .await;
            match polled {
                std::task::Poll::Ready(Some(frame)) => {
                    let failed = match &frame {
                        Ok(frame) => {
                            bytes += frame.data_ref().map_or(0, |d| d.len());
                            false
                        }
                        Err(_) => true,
                    };
                    self.ahead.push_back(frame);
                    if failed {
                        break;
                    }
                }
                std::task::Poll::Ready(None) => self.ended = true,
                std::task::Poll::Pending if turns < GATHER_TURNS => {
                    turns += 1;
                    // Behind the tasks woken meanwhile: the guest's instance, which
                    // hands over the rest of the body as it runs.
                    tokio::task::yield_now().await;
                }
                std::task::Poll::Pending => break,
            }
        }
    }

    fn count(
        &mut self,
        frame: GuestFrame,
    ) -> Result<http_body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    self.timer.bytes_out += data.len() as u64;
                }
                Ok(frame)
            }
            Err(e) => Err(format!("the function's response body failed: {e:?}").into()),
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(frame) = self.ahead.pop_front() {
            return std::task::Poll::Ready(Some(self.count(frame)));
        }
        if self.ended {
            return std::task::Poll::Ready(None);
        }
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        polled.map(|frame| frame.map(|frame| self.count(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_empty() && (self.ended || self.body.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let ahead: u64 = self
            .ahead
            .iter()
            .filter_map(|f| f.as_ref().ok()?.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        if self.ended {
            // All of it is here: hyper sends a content-length, not chunks.
            return http_body::SizeHint::with_exact(ahead);
        }
        let rest = self.body.size_hint();
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(rest.lower() + ahead);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}

async fn invoke(
    node: &Node,
    entry: &FunctionEntry,
    tenant: Option<&TenantRuntime>,
    slot: &VersionSlot,
    req: Request<Incoming>,
    target: Target,
    timer: &mut RequestTimer,
) -> Result<GuestResponse, ApiError> {
    let limits = slot.config.limits;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is larger than function '{}' accepts ({} bytes); raise `limits.max_body_bytes` in glint.toml",
                entry.name, limits.max_body_bytes
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large());
    }

    // The body comes first, under its own deadline: a client that sends slowly holds
    // its connection, never a place among the function's running guests.
    let (mut parts, body) = req.into_parts();
    let body = if body.is_end_stream() {
        // No body (a GET): nothing to wait for, so no deadline to arm.
        Bytes::new()
    } else {
        read_body(node, body, limits.max_body_bytes, too_large).await?
    };

    let queue_timeout = Duration::from_millis(slot.config.scaling.max_queue_ms);
    // A free slot is taken at once; only a wait arms the queue's deadline.
    let free = slot.concurrency.clone().try_acquire_owned().ok();
    let permit = match free {
        Some(p) => p,
        // Only a request that waits counts as queued.
        // Boxed: only a request that waits carries the wait's state (its timer).
        None => match Box::pin(wait_for_permit(slot, queue_timeout)).await {
            Some(p) => p,
            None => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "at_capacity",
                    format!(
                        "function '{}' is at its concurrency limit of {} and none finished within {} ms; retry shortly or raise `scaling.max_concurrency`",
                        entry.name,
                        slot.config.scaling.max_concurrency,
                        slot.config.scaling.max_queue_ms
                    ),
                );
                e.retry_after = Some(1);
                return Err(e);
            }
        },
    };
    let tenant_permit = match tenant.and_then(TenantRuntime::slots) {
        Some(slots) => Some(tenant_slot(slots, entry, queue_timeout).await?),
        None => None,
    };
    timer.bytes_in = body.len() as u64;

    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost")
        .to_string();
    let route = if target.by_route {
        entry.route.as_str()
    } else {
        ""
    };
    let guest_path = match slot.config.http_style {
        HttpStyle::Glint => target.path,
        HttpStyle::Spin => spin_request(&mut parts, route, &host, target.connection),
    };
    parts.uri = guest_uri(host, guest_path)?;
    if target.by_route
        && let Some(prefix) = &entry.route_header
    {
        parts.headers.insert("x-forwarded-prefix", prefix.clone());
    }
    strip_session_cookie(&mut parts.headers);
    let request = Request::from_parts(parts, body);

    let compiled = node.compiled(&entry.tenant, slot).await?;
    let log = &timer.log;
    let invocation = Invocation {
        limits,
        log: log.clone(),
        usage: log.clone(),
        grants: &slot.grants,
        pool: slot.pool.as_ref(),
        queue_timeout,
    };
    // The permit goes with the guest's task: it counts guests that run, so a client
    // that resets its request (an HTTP/2 stream, say) cannot start more than the limit.
    // The in-flight gauge counts the same guests.
    let running = (permit, tenant_permit, InFlight::count(log));
    let response = node
        .runtime
        .invoke(&compiled, request, invocation, running)
        .await?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spin_request_keeps_its_path_and_says_how_it_was_routed() {
        let (mut parts, ()) = Request::builder()
            .uri("/spin-greet/there/again?x=1")
            .header("spin-path-info", "/forged")
            .body(())
            .unwrap()
            .into_parts();
        let connection = Connection {
            peer: "192.0.2.7:50123".parse().unwrap(),
            tls: true,
        };
        let path = spin_request(&mut parts, "/spin-greet", "edge.example:8443", connection);
        assert_eq!(path, "/spin-greet/there/again?x=1");
        let header = |name: &str| parts.headers.get(name).unwrap().to_str().unwrap();
        assert_eq!(
            header("spin-full-url"),
            "https://edge.example:8443/spin-greet/there/again?x=1"
        );
        assert_eq!(header("spin-path-info"), "/there/again");
        assert_eq!(parts.headers.get_all("spin-path-info").iter().count(), 1);
        assert_eq!(header("spin-matched-route"), "/spin-greet/...");
        assert_eq!(header("spin-raw-component-route"), "/spin-greet/...");
        assert_eq!(header("spin-component-route"), "/spin-greet");
        assert_eq!(header("spin-base-path"), "/");
        assert_eq!(header("spin-client-addr"), "192.0.2.7:50123");
    }

    #[test]
    fn the_session_cookie_never_reaches_a_guest() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; __Host-glint_key=glint_secret; b=2"),
        );
        headers.append(COOKIE, HeaderValue::from_static("__Host-glint_key=again"));
        strip_session_cookie(&mut headers);
        assert_eq!(headers.get_all(COOKIE).iter().count(), 1);
        assert_eq!(headers[COOKIE], "a=1; b=2");
        let mut only = http::HeaderMap::new();
        only.insert(COOKIE, HeaderValue::from_static("__Host-glint_key=x"));
        strip_session_cookie(&mut only);
        assert!(only.get(COOKIE).is_none());
    }

    #[test]
    fn a_guest_cannot_set_the_session_cookie() {
        let mut headers = http::HeaderMap::new();
        for v in [
            "theme=dark; Path=/",
            "__Host-glint_key=glint_tossed; Path=/; Secure",
            " __host-GLINT_KEY =glint_tossed; Path=/; Secure",
            "glint_key_other=1",
        ] {
            headers.append(SET_COOKIE, HeaderValue::from_static(v));
        }
        strip_glint_cookies(&mut headers);
        let left: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(left, ["theme=dark; Path=/", "glint_key_other=1"]);
    }
}
