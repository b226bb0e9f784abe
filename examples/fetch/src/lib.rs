//! The fetch function: an outbound proxy. `GET /?url=<url>` fetches the URL and answers
//! with its status, content type and body.
//!
//! glint.toml's `[outbound]` section says which hosts it may reach; the host denies the
//! rest, and this function answers 502 with the reason.

use glint::http::StatusCode;
use glint::http::header::CONTENT_TYPE;
use glint::{IntoResponse, Request, Response};

fn handle(req: Request) -> Response {
    let query = req.uri().query().unwrap_or("");
    let Some(url) =
        form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| (k == "url").then_some(v))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "ask for a page: /?url=https://example.com/\n",
        )
            .into_response();
    };
    println!("fetch: {url}");
    match glint::get(&url) {
        Ok(upstream) => {
            // Status, type and body only: the upstream's other headers (its connection,
            // caching, cookies) describe its answer, not ours.
            let (parts, body) = upstream.into_parts();
            let mut response = Response::new(body);
            *response.status_mut() = parts.status;
            if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, content_type.clone());
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("fetch error: {e}\n")).into_response(),
    }
}

glint::http_handler!(handle);
