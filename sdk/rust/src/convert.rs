//! Conversions between `wasi:http` resources and the `http` crate's types, shared by the
//! incoming handler and outbound [`fetch`](crate::fetch).

use http::{HeaderMap, HeaderName, HeaderValue};
use wasi::http::types::{Fields, HeaderError, IncomingBody, Method, OutgoingBody};
use wasi::io::streams::StreamError;

/// `blocking-write-and-flush` takes at most 4096 bytes per call (wasi:io/streams).
const WRITE_CHUNK: usize = 4096;
/// How much to ask for per read; the host may return less.
const READ_CHUNK: u64 = 64 * 1024;

pub fn method_to_wasi(method: &http::Method) -> Method {
    match *method {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::CONNECT => Method::Connect,
        http::Method::OPTIONS => Method::Options,
        http::Method::TRACE => Method::Trace,
        http::Method::PATCH => Method::Patch,
        _ => Method::Other(method.as_str().to_string()),
    }
}

pub fn method_from_wasi(method: Method) -> Result<http::Method, http::method::InvalidMethod> {
    Ok(match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(other) => http::Method::from_bytes(other.as_bytes())?,
    })
}

/// The host has already checked the headers it hands over, so an entry `http` still
/// rejects is dropped rather than failing the whole request.
pub fn header_map(entries: Vec<(String, Vec<u8>)>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// The headers as `wasi:http` fields, and those the host refused (such as `host` or
/// `connection`, which it sets itself).
pub fn to_fields(headers: &HeaderMap) -> (Fields, Vec<(HeaderName, HeaderError)>) {
    let fields = Fields::new();
    let mut refused = Vec::new();
    for (name, value) in headers {
        if let Err(e) = fields.append(name.as_str(), value.as_bytes()) {
            refused.push((name.clone(), e));
        }
    }
    (fields, refused)
}

/// Reads a body to its end, then lets the host know it is done with it.
pub fn read_body(body: IncomingBody) -> Result<Vec<u8>, StreamError> {
    let stream = body.stream().expect("a body's stream is taken once");
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(e),
        }
    }
    // The stream is a child of the body and must go first; trailers are not offered.
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(data)
}

/// Writes all of `bytes` into `body`; the caller then finishes it.
pub fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), StreamError> {
    let stream = body.write().expect("a body's stream is taken once");
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

/// A stream error in words, for a log line or an error message.
pub fn stream_error_message(e: &StreamError) -> String {
    match e {
        StreamError::Closed => "the stream was closed".to_string(),
        StreamError::LastOperationFailed(err) => err.to_debug_string(),
    }
}
