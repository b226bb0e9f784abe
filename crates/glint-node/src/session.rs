//! The dashboard's session cookie: its name, the `Set-Cookie` values that sign a browser
//! in and out, and how a request's key is read from it. The dashboard sets it, the admin
//! API's auth accepts it for reads, and the data plane keeps it away from guests (both
//! ways). Cookie syntax is the `cookie` crate's, on all of these paths.

use cookie::{Cookie, SameSite};

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
        .flat_map(Cookie::split_parse)
        .find_map(|c| {
            let c = c.ok()?;
            (c.name() == SESSION_COOKIE).then_some(c.value_raw()?)
        })
}

/// Whether `pair`, one `name=value` of a `Cookie` header, is the session cookie, read as
/// [`session_cookie`] reads it.
pub fn is_session_pair(pair: &str) -> bool {
    Cookie::parse(pair).is_ok_and(|c| c.name() == SESSION_COOKIE)
}

/// Whether a `Set-Cookie` value sets the session cookie, whatever the case of its name.
pub fn sets_session_cookie(set_cookie: &[u8]) -> bool {
    // Lossy: a cookie's name is ASCII, so bytes past it cannot hide the session's name.
    Cookie::parse(String::from_utf8_lossy(set_cookie))
        .is_ok_and(|c| c.name().eq_ignore_ascii_case(SESSION_COOKIE))
}

/// The `Set-Cookie` value that signs a browser in with `key`, or None if the key cannot
/// be a cookie value (an admin key from `GLINT_ADMIN_KEY` may hold any character;
/// generated keys always can).
pub fn sign_in_cookie(key: &str) -> Option<String> {
    let cookie_safe = key
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'));
    // A session cookie (no Max-Age): signing in again after the browser closes is cheap,
    // and a key is not left on disk in a profile longer than needed.
    cookie_safe.then(|| with_attributes(Cookie::new(SESSION_COOKIE, key)))
}

/// The `Set-Cookie` value that signs a browser out.
pub fn sign_out_cookie() -> String {
    let mut cookie = Cookie::new(SESSION_COOKIE, "");
    cookie.set_max_age(cookie::time::Duration::ZERO);
    with_attributes(cookie)
}

/// `Path=/` because the page's script calls `/api/v1`, outside `/dashboard`, and the
/// `__Host-` prefix needs it. `Secure` always, as that prefix demands: browsers keep such
/// a cookie over HTTPS, and over plain HTTP only on loopback (`localhost`, 127.0.0.1).
fn with_attributes(mut cookie: Cookie<'_>) -> String {
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_secure(true);
    cookie.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_from_the_session_cookie_alone() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "a=1;; b".parse().unwrap());
        headers.append(
            http::header::COOKIE,
            "__host-glint_key=other; __Host-glint_key= glint_k ; c=3"
                .parse()
                .unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some("glint_k"));
        assert_eq!(session_cookie(&http::HeaderMap::new()), None);
    }

    #[test]
    fn sign_in_and_out_set_the_prefixed_cookie_with_its_attributes() {
        let set = sign_in_cookie("glint_abc").unwrap();
        let parsed = Cookie::parse(set.as_str()).unwrap();
        assert_eq!(
            (parsed.name(), parsed.value()),
            (SESSION_COOKIE, "glint_abc")
        );
        assert_eq!(parsed.path(), Some("/"));
        assert_eq!(parsed.http_only(), Some(true));
        assert_eq!(parsed.same_site(), Some(SameSite::Strict));
        assert_eq!(parsed.secure(), Some(true));
        assert_eq!(parsed.max_age(), None, "a session cookie");
        assert_eq!(sign_in_cookie("a;b"), None);
        let out = sign_out_cookie();
        assert!(out.starts_with("__Host-glint_key=;"), "{out}");
        assert!(out.contains("; Max-Age=0"), "{out}");
    }
}
