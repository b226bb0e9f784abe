//! The web dashboard, served on the admin listener under `/dashboard`.
//!
//! The server's part is small: a sign-in form that checks an API key and keeps it in an
//! HttpOnly cookie, and a page and its assets built into the binary (no CDN, no network
//! fonts, so it works offline). What the page shows, its scripts read from the same
//! `/api/v1` the CLI uses, authenticated by that cookie, so the dashboard never sees more
//! than its key may. The scripts are ES modules with no build step: `assets/app.js` is the
//! entry and imports one module per page and the shared ones; [`ASSETS`] lists them all.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Router, http};
use glint_store::ApiKeyRecord;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde::Deserialize;

use crate::node::Node;
use crate::session::{session_cookie, sign_in_cookie, sign_out_cookie};

const APP_HTML: &str = include_str!("assets/app.html");
const SIGN_IN_HTML: &str = include_str!("assets/sign-in.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Every file served under `/dashboard/assets/`, with its content type; any other name is
/// a 404. A new script module goes here too, or its import fails in the browser.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        include_str!("assets/app.css"),
        "text/css; charset=utf-8",
    ),
    ("icon.svg", include_str!("assets/icon.svg"), "image/svg+xml"),
    // The entry, then the pages it routes to, then what they share.
    ("app.js", include_str!("assets/app.js"), JAVASCRIPT),
    (
        "overview.js",
        include_str!("assets/overview.js"),
        JAVASCRIPT,
    ),
    (
        "function.js",
        include_str!("assets/function.js"),
        JAVASCRIPT,
    ),
    ("logs.js", include_str!("assets/logs.js"), JAVASCRIPT),
    ("kv.js", include_str!("assets/kv.js"), JAVASCRIPT),
    (
        "node-status.js",
        include_str!("assets/node-status.js"),
        JAVASCRIPT,
    ),
    ("regions.js", include_str!("assets/regions.js"), JAVASCRIPT),
    ("charts.js", include_str!("assets/charts.js"), JAVASCRIPT),
    (
        "stats-window.js",
        include_str!("assets/stats-window.js"),
        JAVASCRIPT,
    ),
    ("layout.js", include_str!("assets/layout.js"), JAVASCRIPT),
    ("view.js", include_str!("assets/view.js"), JAVASCRIPT),
    ("format.js", include_str!("assets/format.js"), JAVASCRIPT),
    ("api.js", include_str!("assets/api.js"), JAVASCRIPT),
    ("dom.js", include_str!("assets/dom.js"), JAVASCRIPT),
];

/// Where the dashboard lives, and where signing in and out land.
const HOME: &str = "/dashboard";
const SIGN_IN: &str = "/dashboard/sign-in";
/// The query of the page a sign-in lands on, to tell a refused cookie from no sign-in.
const JUST_SIGNED_IN: &str = "signed-in";

/// The page may load only what the node itself serves; the script builds its DOM with
/// `textContent`, and this keeps a log line that slipped into markup from ever running.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub fn router(_node: Arc<Node>) -> Router<Arc<Node>> {
    Router::new()
        .route("/", get(|| async { Redirect::to(HOME) }))
        .route("/dashboard", get(app))
        .route("/dashboard/", get(|| async { Redirect::to(HOME) }))
        .route("/dashboard/sign-in", get(sign_in_form).post(sign_in))
        .route("/dashboard/sign-out", axum::routing::post(sign_out))
        .route("/dashboard/assets/{file}", get(asset))
}

/// The dashboard for a signed-in key; anyone else is sent to the sign-in form.
async fn app(State(node): State<Arc<Node>>, uri: Uri, headers: HeaderMap) -> Response {
    match session_cookie(&headers) {
        Some(key) => match node.keys.check(key) {
            Some(record) => page(StatusCode::OK, app_page(&record)),
            // A revoked key: forget it, and say why the operator is asked again.
            None => with_cookie(
                sign_in_page(
                    StatusCode::UNAUTHORIZED,
                    "Your API key is no longer valid. Sign in with a current key.",
                ),
                &sign_out_cookie(),
            ),
        },
        // Straight from signing in, yet no cookie: the browser would not keep it.
        None if uri.query() == Some(JUST_SIGNED_IN) => sign_in_page(
            StatusCode::BAD_REQUEST,
            "Your browser did not keep the session cookie. Browsers keep it over HTTPS, or \
             over plain HTTP only on a loopback address: serve the node with --tls-cert and \
             --tls-key, or reach the admin API through an SSH tunnel to 127.0.0.1.",
        ),
        None => Redirect::to(SIGN_IN).into_response(),
    }
}

async fn sign_in_form() -> Response {
    sign_in_page(StatusCode::OK, "")
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    key: String,
}

/// Checks the posted key; a live one goes into the session cookie.
async fn sign_in(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !same_origin(&uri, &headers) {
        return cross_origin_refused();
    }
    let key = form.key.trim();
    if key.is_empty() {
        return sign_in_page(StatusCode::BAD_REQUEST, "Enter an API key.");
    }
    if node.keys.check(key).is_none() {
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            "That key is not valid: it may be mistyped or revoked. The node's first admin key \
             is in its data dir, in the file admin-key.",
        );
    }
    let Some(cookie) = sign_in_cookie(key) else {
        return sign_in_page(
            StatusCode::BAD_REQUEST,
            "This key has characters a browser cookie cannot hold; use it with the CLI, or \
             make a key for the dashboard with `glint keys create dashboard --role read`.",
        );
    };
    let home = format!("{HOME}?{JUST_SIGNED_IN}");
    with_cookie(Redirect::to(&home).into_response(), &cookie)
}

async fn sign_out(uri: Uri, headers: HeaderMap) -> Response {
    if !same_origin(&uri, &headers) {
        return cross_origin_refused();
    }
    with_cookie(Redirect::to(SIGN_IN).into_response(), &sign_out_cookie())
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let Some(&(_, body, content_type)) = ASSETS.iter().find(|(name, ..)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such dashboard asset\n").into_response();
    };
    // Revalidated on every load, so a new build of the node is never paired with an
    // old script, nor one module with another's older version; the files are small and
    // come from the same machine.
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

/// The page shell, with who is signed in, for the header.
fn app_page(record: &ApiKeyRecord) -> String {
    APP_HTML
        .replace("{{tenant}}", &escape_html(record.tenant.as_str()))
        .replace("{{role}}", &escape_html(record.role.as_str()))
        .replace("{{key_name}}", &escape_html(&record.name))
        .replace("{{key_prefix}}", &escape_html(&record.prefix))
}

fn sign_in_page(status: StatusCode, error: &str) -> Response {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p class="form-error" role="alert" id="sign-in-error">{}</p>"#,
            escape_html(error)
        )
    };
    page(status, SIGN_IN_HTML.replace("{{error}}", &error))
}

/// An HTML page that is never cached and never framed.
fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (CACHE_CONTROL, "no-store"),
            (
                http::header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY,
            ),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Not `no-referrer`: under it a browser sends `Origin: null` with form
            // posts, and `same_origin` could no longer tell ours from a forged one.
            (http::header::REFERRER_POLICY, "same-origin"),
        ],
        Html(html),
    )
        .into_response()
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Whether a form post came from a page of this node. Browsers send `Origin` with every
/// POST; refusing a foreign one stops another site from signing a visitor in with its
/// own key, or out.
fn same_origin(uri: &Uri, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true; // not a browser form post (curl, a script): nothing to forge
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn cross_origin_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this form must be sent from the dashboard's own page\n",
    )
        .into_response()
}

/// Escapes text for HTML. The pages are fixed templates with a few holes, so this is all
/// the templating they need.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<b a="1">&'"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn form_posts_must_come_from_this_origin() {
        let uri: Uri = "/dashboard/sign-in".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:9090".parse().unwrap());
        assert!(same_origin(&uri, &headers), "no Origin: not a browser");
        headers.insert(
            http::header::ORIGIN,
            "http://127.0.0.1:9090".parse().unwrap(),
        );
        assert!(same_origin(&uri, &headers));
        headers.insert(
            http::header::ORIGIN,
            "http://127.0.0.1:8080".parse().unwrap(),
        );
        assert!(
            !same_origin(&uri, &headers),
            "the data plane is another origin"
        );
        headers.insert(http::header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&uri, &headers));
    }

    /// The script modules: name, source and the served modules it imports.
    fn script_modules() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
        ASSETS
            .iter()
            .filter(|(name, ..)| name.ends_with(".js"))
            .map(|&(name, body, _)| (name, body, module_imports(body)))
            .collect()
    }

    /// What `import ... from './x.js';` lines name; the modules import nothing else.
    fn module_imports(source: &str) -> Vec<&str> {
        source
            .lines()
            .filter(|line| line.starts_with("import "))
            .map(|line| {
                line.split_once(" from './")
                    .and_then(|(_, rest)| rest.strip_suffix("';"))
                    .unwrap_or_else(|| panic!("not an import of a sibling module: {line}"))
            })
            .collect()
    }

    #[test]
    fn every_imported_module_is_served_as_javascript() {
        for (name, body, imports) in script_modules() {
            assert!(
                body.starts_with("// "),
                "{name} should open with a line on its role"
            );
            for import in imports {
                let served = ASSETS.iter().find(|(file, ..)| *file == import);
                assert!(
                    matches!(served, Some((_, _, JAVASCRIPT))),
                    "{name} imports {import}, which ASSETS does not serve as JavaScript"
                );
            }
        }
        let html_scripts = APP_HTML.matches("<script").count();
        assert_eq!(
            html_scripts,
            APP_HTML
                .matches(r#"<script type="module" src="/dashboard/assets/app.js">"#)
                .count(),
            "app.html loads app.js, as a module, and nothing else"
        );
    }

    #[test]
    fn script_modules_import_one_way() {
        let modules = script_modules();
        let imports_of = |name: &str| {
            modules
                .iter()
                .find(|(n, ..)| *n == name)
                .map(|(_, _, imports)| imports.clone())
                .unwrap_or_default()
        };
        // Depth-first from every module; meeting one still on the path is a cycle.
        fn visit<'a>(
            name: &'a str,
            path: &mut Vec<&'a str>,
            imports_of: &dyn Fn(&str) -> Vec<&'a str>,
        ) {
            if let Some(at) = path.iter().position(|n| *n == name) {
                panic!("import cycle: {} -> {name}", path[at..].join(" -> "));
            }
            path.push(name);
            for next in imports_of(name) {
                visit(next, path, imports_of);
            }
            path.pop();
        }
        for (name, ..) in &modules {
            visit(name, &mut Vec::new(), &imports_of);
        }
        // Every module is reached from the entry, so none is served that the page never runs.
        let mut reached = vec!["app.js"];
        let mut i = 0;
        while i < reached.len() {
            for next in imports_of(reached[i]) {
                if !reached.contains(&next) {
                    reached.push(next);
                }
            }
            i += 1;
        }
        for (name, ..) in &modules {
            assert!(
                reached.contains(name),
                "{name} is served but app.js never imports it"
            );
        }
    }
}
