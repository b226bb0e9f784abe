//! The incoming side: a `wasi:http` request becomes a [`Request`], the handler's
//! [`IntoResponse`] becomes the `wasi:http` response.

use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use wasi::http::types::{
    IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam, Scheme,
};

use crate::convert;
use crate::{Request, Response};

const TEXT: &str = "text/plain; charset=utf-8";
const BYTES: &str = "application/octet-stream";

/// What a handler may return.
///
/// Strings become `200 text/plain`, byte vectors `200 application/octet-stream`, a
/// `(StatusCode, T)` sets the status of `T`'s response, and a `Result` answers with
/// whichever side it holds, so handlers can use `?` on errors that are responses too.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

fn with_type(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl<B: Into<Vec<u8>>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        self.map(Into::into)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_type(self.into_bytes(), TEXT)
    }
}

impl IntoResponse for &str {
    fn into_response(self) -> Response {
        with_type(self.as_bytes().to_vec(), TEXT)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_type(self, BYTES)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut response = Response::new(Vec::new());
        *response.status_mut() = self;
        response
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        *response.status_mut() = self.0;
        response
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

/// Runs `handler` on one request; what [`http_handler!`](crate::http_handler) exports.
pub fn serve<R: IntoResponse>(
    incoming: IncomingRequest,
    out: ResponseOutparam,
    handler: impl FnOnce(Request) -> R,
) {
    let response = match read_request(&incoming) {
        Ok(request) => handler(request).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("bad request: {why}\n")).into_response(),
    };
    send(out, response);
}

fn read_request(incoming: &IncomingRequest) -> Result<Request, String> {
    let method = convert::method_from_wasi(incoming.method()).map_err(|e| e.to_string())?;
    let path = incoming
        .path_with_query()
        .unwrap_or_else(|| "/".to_string());
    // A full URI when the host names scheme and authority, so `uri()` can build absolute
    // links; the path alone if that does not parse (an odd Host header, say).
    let absolute = match (incoming.scheme(), incoming.authority()) {
        (Some(scheme), Some(authority)) => {
            let scheme = match &scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
                Scheme::Other(other) => other.as_str(),
            };
            format!("{scheme}://{authority}{path}")
                .parse::<http::Uri>()
                .ok()
        }
        _ => None,
    };
    let uri = match absolute {
        Some(uri) => uri,
        None => path
            .parse::<http::Uri>()
            .map_err(|e| format!("{path:?}: {e}"))?,
    };
    let headers = convert::header_map(incoming.headers().entries());
    let body = match incoming.consume() {
        Ok(body) => convert::read_body(body).map_err(|e| {
            format!(
                "cannot read the request body: {}",
                convert::stream_error_message(&e)
            )
        })?,
        Err(()) => Vec::new(),
    };
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

fn send(out: ResponseOutparam, response: Response) {
    let (parts, body) = response.into_parts();
    let (fields, refused) = convert::to_fields(&parts.headers);
    for (name, e) in refused {
        // stderr lands in `glint logs`, where the author will look for a missing header.
        eprintln!("glint-sdk: response header {name} dropped: the host refused it ({e:?})");
    }
    let outgoing = OutgoingResponse::new(fields);
    outgoing
        .set_status_code(parts.status.as_u16())
        .expect("an http::StatusCode is a valid status");
    let outgoing_body = outgoing.body().expect("a response's body is taken once");
    ResponseOutparam::set(out, Ok(outgoing));
    // Past this point the status is sent; a failure can only be logged. The usual one is a
    // client that went away.
    if let Err(e) = convert::write_body(&outgoing_body, &body) {
        eprintln!(
            "glint-sdk: response body cut short: {}",
            convert::stream_error_message(&e)
        );
        return;
    }
    if let Err(code) = OutgoingBody::finish(outgoing_body, None) {
        eprintln!("glint-sdk: response body not finished: {code:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_bytes_carry_their_content_type() {
        let text = "hi".into_response();
        assert_eq!(text.status(), StatusCode::OK);
        assert_eq!(text.headers()[CONTENT_TYPE], TEXT);
        assert_eq!(text.body(), b"hi");
        let bytes = vec![1u8, 2].into_response();
        assert_eq!(bytes.headers()[CONTENT_TYPE], BYTES);
    }

    #[test]
    fn a_status_pair_overrides_the_status_and_keeps_the_body() {
        let response = (StatusCode::NOT_FOUND, String::from("not found")).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.body(), b"not found");
    }

    #[test]
    fn a_result_answers_with_the_side_it_holds() {
        let err: Result<&'static str, (StatusCode, &'static str)> =
            Err((StatusCode::BAD_GATEWAY, "down"));
        assert_eq!(err.into_response().status(), StatusCode::BAD_GATEWAY);
        let ok: Result<&'static str, StatusCode> = Ok("up");
        assert_eq!(ok.into_response().body(), b"up");
    }

    #[test]
    fn a_built_response_keeps_its_headers() {
        let built = http::Response::builder()
            .status(StatusCode::CREATED)
            .header("x-id", "7")
            .body("made")
            .unwrap();
        let response = built.into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["x-id"], "7");
        assert_eq!(response.body(), b"made");
    }
}
