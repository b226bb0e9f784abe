//! Outbound HTTP over `wasi:http/outgoing-handler`: [`fetch`] sends a request and blocks
//! until the whole response is in. On Glint the host checks each call against
//! glint.toml's `[outbound]` section and denies the rest with `HttpRequestDenied`.

use http::StatusCode;
use http::header::CONTENT_LENGTH;
use wasi::http::outgoing_handler;
use wasi::http::types::{OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

use crate::convert;
use crate::{Request, Response};

/// Why an outbound request failed, as `wasi:http` reports it.
pub use wasi::http::types::ErrorCode;

/// Why [`fetch`] got no response.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request cannot be sent as written: no scheme or host in its URL, or a header
    /// the host sets itself (such as `host` or `connection`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The host refused the request or it failed on the way. `HttpRequestDenied` means
    /// glint.toml's `[outbound]` section does not allow it.
    #[error("{}", describe(.0))]
    Http(ErrorCode),
    /// A body stream broke, with no HTTP error code to say why.
    #[error("body stream failed: {0}")]
    Body(String),
}

impl FetchError {
    /// The `wasi:http` error code, when the failure has one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            FetchError::Http(code) => Some(code),
            _ => None,
        }
    }
}

fn describe(code: &ErrorCode) -> String {
    let (name, detail) = case_name(code);
    let shown = match detail {
        Some(detail) => format!("{name} ({detail})"),
        None => name,
    };
    match code {
        ErrorCode::HttpRequestDenied => format!(
            "{shown}: the host denied the request; allow its scheme://host[:port] and method in \
             glint.toml's [outbound] section (`glint logs` names the rule it broke)"
        ),
        _ => shown,
    }
}

/// The code's case as the WIT spells it (`HTTP-request-denied`, `DNS-timeout`), as the
/// Python and JavaScript SDKs print it, and its payload, if any.
fn case_name(code: &ErrorCode) -> (String, Option<String>) {
    // The generated `Debug` is the only name the bindings give a case: `ErrorCode::DnsError(..)`.
    let debug = format!("{code:?}");
    let debug = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
    let (camel, payload) = match debug.split_once('(') {
        Some((camel, rest)) => (camel, Some(rest.strip_suffix(')').unwrap_or(rest))),
        None => (debug, None),
    };
    let mut words: Vec<String> = Vec::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        words
            .last_mut()
            .expect("pushed above")
            .push(c.to_ascii_lowercase());
    }
    if let Some(first) = words.first_mut()
        && matches!(first.as_str(), "dns" | "tls" | "http")
    {
        *first = first.to_ascii_uppercase();
    }
    let detail = payload
        .map(|p| {
            p.strip_prefix("Some(")
                .and_then(|p| p.strip_suffix(')'))
                .unwrap_or(p)
        })
        .filter(|p| *p != "None")
        .map(str::to_string);
    (words.join("-"), detail)
}

/// An `http-error-code` hides inside a failed body stream when the connection broke.
fn body_error(e: StreamError) -> FetchError {
    if let StreamError::LastOperationFailed(err) = &e
        && let Some(code) = wasi::http::types::http_error_code(err)
    {
        return FetchError::Http(code);
    }
    FetchError::Body(convert::stream_error_message(&e))
}

/// Sends `request` to the absolute URL in its URI and waits for the whole response.
///
/// ```no_run
/// let request = glint::http::Request::post("https://api.example.com/items")
///     .header("content-type", "application/json")
///     .body(br#"{"name":"glint"}"#.to_vec())
///     .unwrap();
/// let response = glint::fetch(request)?;
/// println!("{}", response.status());
/// # Ok::<(), glint::FetchError>(())
/// ```
pub fn fetch(request: Request) -> Result<Response, FetchError> {
    let (parts, body) = request.into_parts();
    let outgoing = outgoing_request(&parts, body.len())?;
    let outgoing_body = outgoing.body().expect("a new request's body is taken once");
    // The call comes before the body is written, so a large body streams to the host
    // instead of filling a pipe nobody reads.
    let future = outgoing_handler::handle(outgoing, None).map_err(FetchError::Http)?;
    // A failed write is not an error of its own: a denied or broken request fails the
    // response future too, with an error code that says why, and a server may answer (413,
    // 401) before reading the whole body, in which case its answer is what the caller wants.
    // Dropping an unfinished body tells the host it is incomplete.
    if convert::write_body(&outgoing_body, &body).is_ok() {
        let _ = OutgoingBody::finish(outgoing_body, None);
    }

    future.subscribe().block();
    let incoming = match future.get() {
        Some(Ok(result)) => result.map_err(FetchError::Http)?,
        Some(Err(())) | None => unreachable!("the response is ready after `block` and taken once"),
    };

    let status = StatusCode::from_u16(incoming.status())
        .map_err(|_| FetchError::Http(ErrorCode::HttpProtocolError))?;
    let headers = convert::header_map(incoming.headers().entries());
    let body = convert::read_body(incoming.consume().expect("a response's body is taken once"))
        .map_err(body_error)?;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// `GET url`: a shorthand for [`fetch`].
///
/// ```no_run
/// let page = glint::get("https://example.com/")?;
/// let text = String::from_utf8_lossy(page.body());
/// # Ok::<(), glint::FetchError>(())
/// ```
pub fn get(url: &str) -> Result<Response, FetchError> {
    let request = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| FetchError::InvalidRequest(format!("{url:?}: {e}")))?;
    fetch(request)
}

fn outgoing_request(
    parts: &http::request::Parts,
    body_len: usize,
) -> Result<OutgoingRequest, FetchError> {
    let uri = &parts.uri;
    let not_absolute = || {
        FetchError::InvalidRequest(format!(
            "{uri:?} is not an absolute URL; write it like https://example.com/path"
        ))
    };
    let scheme = match uri.scheme_str().ok_or_else(not_absolute)? {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let authority = uri.authority().ok_or_else(not_absolute)?;

    let (fields, refused) = convert::to_fields(&parts.headers);
    if let Some((name, e)) = refused.first() {
        return Err(FetchError::InvalidRequest(format!(
            "header {name}: the host refused it ({e:?}); the host sets it itself"
        )));
    }
    // The whole body is known, so say how long it is instead of sending it chunked, which
    // some servers refuse.
    if body_len > 0 && !parts.headers.contains_key(CONTENT_LENGTH) {
        fields
            .append(CONTENT_LENGTH.as_str(), body_len.to_string().as_bytes())
            .map_err(|e| FetchError::InvalidRequest(format!("content-length: {e:?}")))?;
    }

    let outgoing = OutgoingRequest::new(fields);
    let invalid =
        |what: &str| FetchError::InvalidRequest(format!("the host refused the {what} of {uri:?}"));
    outgoing
        .set_method(&convert::method_to_wasi(&parts.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority.as_str()))
        .map_err(|()| invalid("host"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    Ok(outgoing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_their_wit_cases() {
        assert_eq!(
            case_name(&ErrorCode::HttpRequestDenied),
            ("HTTP-request-denied".to_string(), None)
        );
        assert_eq!(
            case_name(&ErrorCode::DnsTimeout),
            ("DNS-timeout".to_string(), None)
        );
        assert_eq!(
            case_name(&ErrorCode::ConnectionRefused),
            ("connection-refused".to_string(), None)
        );
        assert_eq!(
            case_name(&ErrorCode::InternalError(Some("boom".to_string()))),
            ("internal-error".to_string(), Some("\"boom\"".to_string()))
        );
        assert_eq!(
            case_name(&ErrorCode::HttpRequestBodySize(None)),
            ("HTTP-request-body-size".to_string(), None)
        );
    }

    #[test]
    fn a_denial_says_where_to_allow_it() {
        let message = FetchError::Http(ErrorCode::HttpRequestDenied).to_string();
        assert!(message.starts_with("HTTP-request-denied: "), "{message}");
        assert!(message.contains("[outbound]"), "{message}");
    }
}
