//! The dashboard's session cookie: its name and how a request's key is read from it.
//! The dashboard sets it, the admin API's auth accepts it for reads, and the data plane
//! keeps it away from guests (both ways).

/// The cookie the dashboard keeps the signed-in key in. The `__Host-` prefix makes a
/// browser refuse it unless it was set `Secure`, with `Path=/` and no `Domain`, by a
/// secure page of this very host: a plain-HTTP page cannot plant one, and guests on the
/// data plane cannot send one at all (the data plane drops it from guests' responses).
pub const SESSION_COOKIE: &str = "__Host-glint_key";

/// The key in the dashboard's session cookie, if the request carries one.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value.trim())
        })
}
