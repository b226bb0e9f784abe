//! The web dashboard in a real browser: headless Chromium (Debian's `chromium`, which
//! `scripts/setup` installs), driven over the DevTools protocol. It signs in, watches a
//! function's request count rise and its printed line arrive in the live tail, filters the
//! tail, browses a KV store, signs out, and saves screenshots to `target/dashboard*.png`.
//!
//! Every wait is bounded and polls what the page shows; nothing asserts on timing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::browser::BrowserConfig;
use chromiumoxide::cdp::browser_protocol::emulation::MediaFeature;
use chromiumoxide::cdp::browser_protocol::network::CookieSameSite;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use glint_e2e::{Node, repo_root};
use serde_json::Value;

/// How long the page gets to show something the node already has.
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_shows_traffic_and_live_logs() {
    let node = Node::start();
    let admin = node.admin();
    // A greeting no page may show: env values stay hidden, only names appear.
    admin.deploy_hello("Bonjour-hidden-value").await;
    kv_put(&node, "dash", "greeting/fr", b"bonjour tout le monde").await;

    let chrome = Chrome::launch().await;
    let page = &chrome.page;
    // Script errors, failed promises and CSP refusals, kept across page loads.
    page.evaluate_on_new_document(RECORD_PAGE_ERRORS)
        .await
        .unwrap();
    let dashboard = format!("{}/dashboard", node.admin_url);

    // Not signed in: the dashboard sends the browser to the sign-in form.
    page.goto(&dashboard).await.unwrap();
    wait_for(
        page,
        "the sign-in form",
        "location.pathname === '/dashboard/sign-in' && !!document.querySelector('#sign-in-form')",
    )
    .await;

    // A wrong key is refused, with the reason on the page.
    sign_in(page, "glint_0000000000000000000000000000000000000000").await;
    let error = wait_for(
        page,
        "the sign-in error",
        "document.querySelector('#sign-in-error')?.textContent ?? null",
    )
    .await;
    assert!(error.as_str().unwrap().contains("not valid"), "{error}");

    // The node's key signs in, and lands on the functions overview.
    sign_in(page, &node.key).await;
    wait_for(page, "the overview with hello", "location.pathname === '/dashboard' && !!document.querySelector('tr[data-function=\"hello\"]')").await;

    // The key sits in an HttpOnly, SameSite=Strict, Secure `__Host-` cookie, which a
    // browser keeps over plain HTTP on loopback only.
    let cookies = page.get_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name == "__Host-glint_key")
        .expect("a __Host-glint_key cookie after signing in");
    assert_eq!(session.value, node.key);
    assert!(session.http_only, "the session cookie must be HttpOnly");
    assert_eq!(session.same_site, Some(CookieSameSite::Strict));
    assert!(session.secure, "a __Host- cookie is Secure");
    let script_sees: String = eval(page, "document.cookie")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !script_sees.contains("glint_key"),
        "scripts must not read the key: {script_sees}"
    );

    // The request count rises with the requests sent.
    let before = requests_shown(page).await;
    for _ in 0..7 {
        let (status, body) = node.call("/hello").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "Bonjour-hidden-value from Glint!\n")
        );
    }
    let shown = wait_until(PATIENCE, || async {
        requests_shown(page)
            .await
            .filter(|n| *n >= before.unwrap_or(0) + 7)
    })
    .await;
    assert!(
        shown.is_some(),
        "the overview never counted the 7 requests (it showed {:?} before them, {:?} after)",
        before,
        requests_shown(page).await
    );
    screenshot(page, "dashboard.png").await;

    // The function's page: versions, aliases with weights, env names without values.
    click(page, "tr[data-function=\"hello\"] a").await;
    wait_for(page, "the function page", "location.hash === '#/functions/hello' && !!document.querySelector('tr[data-version=\"v1\"]')").await;
    let alias = wait_for(
        page,
        "the latest alias",
        "document.querySelector('[data-alias=\"latest\"]')?.textContent ?? null",
    )
    .await;
    assert!(
        alias.as_str().unwrap().contains("v1") && alias.as_str().unwrap().contains("100%"),
        "{alias}"
    );
    let env = wait_for(
        page,
        "the env names",
        "document.querySelector('#env-names')?.textContent ?? null",
    )
    .await;
    assert!(env.as_str().unwrap().contains("GREETING"), "{env}");
    // Where it is ready: this node's region, with this node serving it.
    let ready = wait_for(
        page,
        "where the function is ready",
        "document.querySelector('#where-ready [data-ready]')?.dataset.ready ?? null",
    )
    .await;
    assert_eq!(ready, "true");
    let text = eval(page, "document.body.innerText").await;
    assert!(
        !text.as_str().unwrap().contains("Bonjour-hidden-value"),
        "an env value is shown on the page"
    );

    // A line the function prints while the page is open arrives over the live stream
    // (the stored lines were read before it was printed).
    wait_for(
        page,
        "the live tail to connect and load",
        "document.querySelector('#tail-state')?.dataset.state === 'live' \
         && document.querySelector('#log-lines')?.dataset.loaded === 'true' || null",
    )
    .await;
    let probe = format!("probe-{}", std::process::id());
    let (status, _) = node.call(&format!("/hello/{probe}")).await;
    assert_eq!(status, 200);
    let via = wait_for_line(page, &format!("hello: GET /{probe}")).await;
    assert_eq!(
        via, "stream",
        "the line came from the stored log, not the live stream"
    );

    // The execution-id filter keeps only that invocation's lines.
    let other = call_for_execution(&node, &format!("/hello/{probe}-other")).await;
    let chosen = call_for_execution(&node, &format!("/hello/{probe}-chosen")).await;
    assert_ne!(other, chosen);
    wait_for_line(page, &format!("hello: GET /{probe}-chosen")).await;
    wait_for_line(page, &format!("hello: GET /{probe}-other")).await;
    page.find_element("#log-execution")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(&chosen)
        .await
        .unwrap();
    let js = format!(
        "(() => {{ const lines = [...document.querySelectorAll('#log-lines .log-line')];
             return lines.length > 0 && lines.every(l => l.dataset.executionId === '{chosen}')
                 && lines.some(l => l.textContent.includes('{probe}-chosen')) || null; }})()"
    );
    wait_for(page, "only the chosen execution's lines", &js).await;

    // Raising the level past what hello prints (info) leaves nothing to show.
    eval(page, "(() => { const s = document.querySelector('#log-level'); s.value = 'warn'; s.dispatchEvent(new Event('change')); return true; })()").await;
    wait_for(
        page,
        "the tail to reload with the level filter",
        "!!document.querySelector('#log-lines .empty') || null",
    )
    .await;
    let info_lines = eval(
        page,
        "document.querySelectorAll('#log-lines .log-line').length",
    )
    .await;
    assert_eq!(info_lines, 0, "info lines shown under a warn filter");
    eval(page, "(() => { const s = document.querySelector('#log-level'); s.value = ''; s.dispatchEvent(new Event('change'));
                        const e = document.querySelector('#log-execution'); e.value = ''; e.dispatchEvent(new Event('input')); return true; })()").await;
    wait_for_line(page, &format!("hello: GET /{probe}-other")).await;
    page.emulate_media_features(vec![MediaFeature {
        name: "prefers-color-scheme".into(),
        value: "dark".into(),
    }])
    .await
    .unwrap();
    screenshot(page, "dashboard-function.png").await;
    page.emulate_media_features(vec![]).await.unwrap();

    // The KV browser lists the store, its keys, and a key's value.
    click(page, "a[data-nav=\"kv\"]").await;
    wait_for(
        page,
        "the KV stores",
        "!!document.querySelector('tr[data-store=\"dash\"]') || null",
    )
    .await;
    click(page, "tr[data-store=\"dash\"] a").await;
    wait_for(
        page,
        "the store's keys",
        "!!document.querySelector('button[data-key=\"greeting/fr\"]') || null",
    )
    .await;
    click(page, "button[data-key=\"greeting/fr\"]").await;
    let value = wait_for(
        page,
        "the key's value",
        "document.querySelector('#kv-value-text')?.textContent ?? null",
    )
    .await;
    assert_eq!(value, "bonjour tout le monde");

    // Regions: this node's, listed with it, and no copies (one node reads its own store).
    click(page, "a[data-nav=\"regions\"]").await;
    let row = wait_for(
        page,
        "the regions table",
        "document.querySelector('#regions tbody tr')?.textContent || null",
    )
    .await;
    let row = row.as_str().unwrap();
    assert!(row.contains("this node") && row.contains("1:"), "{row}");

    // Node status.
    click(page, "a[data-nav=\"node\"]").await;
    let facts = wait_for(
        page,
        "the node status",
        "document.querySelector('#node-facts')?.textContent || null",
    )
    .await;
    assert!(facts.as_str().unwrap().contains(&node.data_url), "{facts}");

    let errors = eval(page, "sessionStorage.getItem('page-errors')").await;
    assert!(
        errors.is_null(),
        "the dashboard's pages reported errors: {errors}"
    );

    // Signing out clears the cookie: the API refuses the page, and the dashboard asks again.
    click(page, "#sign-out").await;
    wait_for(
        page,
        "the sign-in form after signing out",
        "location.pathname === '/dashboard/sign-in' || null",
    )
    .await;
    assert!(
        page.get_cookies()
            .await
            .unwrap()
            .iter()
            .all(|c| c.name != "__Host-glint_key"),
        "the cookie outlived sign-out"
    );
    assert_eq!(
        eval(page, "fetch('/api/v1/node').then(r => r.status)").await,
        401
    );
    page.goto(&dashboard).await.unwrap();
    wait_for(
        page,
        "the sign-in form again",
        "location.pathname === '/dashboard/sign-in' || null",
    )
    .await;

    chrome.close().await;
}

/// Notes every uncaught error, unhandled rejection and CSP violation in
/// `sessionStorage['page-errors']`.
const RECORD_PAGE_ERRORS: &str = r#"
    const note = (m) => {
        try {
            const all = JSON.parse(sessionStorage.getItem('page-errors') || '[]');
            all.push(String(m));
            sessionStorage.setItem('page-errors', JSON.stringify(all));
        } catch (_) { /* about:blank has no storage */ }
    };
    addEventListener('error', (e) => note(`error: ${e.message} at ${e.filename}:${e.lineno}`));
    addEventListener('unhandledrejection', (e) => note(`unhandled rejection: ${e.reason && e.reason.stack || e.reason}`));
    document.addEventListener('securitypolicyviolation', (e) => note(`CSP refused ${e.blockedURI} (${e.violatedDirective})`));
"#;

/// Without a browser: what the sign-in form answers, and the cookie's `Secure` flag over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn sign_in_answers_and_cookie_flags() {
    let (node, cert) = Node::start_tls();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", node.admin_url);

    // No session: the page redirects to the form, and the form is served.
    let resp = http.get(url("/dashboard")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard/sign-in");
    let resp = http.get(url("/dashboard/sign-in")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );

    // A wrong key gets the form again with the reason, and no cookie.
    let resp = http
        .post(url("/dashboard/sign-in"))
        .form(&[("key", "glint_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("set-cookie").is_none());
    assert!(resp.text().await.unwrap().contains("not valid"));

    // A form posted from another origin (the data plane's, say) is refused.
    let resp = http
        .post(url("/dashboard/sign-in"))
        .header("origin", &node.data_url)
        .form(&[("key", node.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("set-cookie").is_none());

    // The right key: HttpOnly, SameSite=Strict and Secure, as `__Host-` demands.
    let resp = http
        .post(url("/dashboard/sign-in"))
        .form(&[("key", node.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in [
        format!("__Host-glint_key={}", node.key).as_str(),
        "Path=/",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
    ] {
        assert!(
            cookie.split("; ").any(|p| p == part),
            "{part:?} missing from {cookie:?}"
        );
    }

    // The cookie opens the dashboard and the API; the assets are built in.
    let session = format!("__Host-glint_key={}", node.key);
    let page = http
        .get(url("/dashboard"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/dashboard/assets/app.js")
    );
    let api = http
        .get(url("/api/v1/node"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    // ...but only to read: with the cookie alone, nothing can be changed.
    let write = http
        .post(url("/api/v1/keys"))
        .header("cookie", &session)
        .json(&serde_json::json!({ "name": "csrf", "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 401);
    let modules = [
        "app.js",
        "overview.js",
        "function.js",
        "logs.js",
        "kv.js",
        "node-status.js",
        "charts.js",
        "stats-window.js",
        "layout.js",
        "view.js",
        "format.js",
        "api.js",
        "dom.js",
    ];
    let assets = modules
        .iter()
        .map(|m| (*m, "text/javascript"))
        .chain([("app.css", "text/css"), ("icon.svg", "image/svg+xml")]);
    for (asset, kind) in assets {
        let resp = http
            .get(url(&format!("/dashboard/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        // Revalidated on each load, so no module runs beside an older build's.
        assert_eq!(resp.headers()["cache-control"], "no-cache", "{asset}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{asset}"
        );
    }
    // Only the listed files: a name the node does not serve is not found.
    for missing in ["nope.js", "app.js.map", "mod.rs"] {
        let resp = http
            .get(url(&format!("/dashboard/assets/{missing}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{missing}");
    }

    // Signing out expires the cookie.
    let resp = http
        .post(url("/dashboard/sign-out"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cleared = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("__Host-glint_key=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

/// A headless Chromium with a throwaway profile, and one page in it.
struct Chrome {
    browser: Browser,
    page: Page,
    events: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    async fn launch() -> Chrome {
        let executable = chromium();
        let profile = tempfile::tempdir().unwrap();
        let viewport = Viewport {
            width: 1440,
            height: 1000,
            ..Viewport::default()
        };
        let config = BrowserConfig::builder()
            .chrome_executable(&executable)
            .new_headless_mode()
            // CI runs as root, where Chromium's sandbox cannot start.
            .no_sandbox()
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .user_data_dir(profile.path())
            .window_size(1440, 1000)
            .viewport(viewport)
            .launch_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", executable.display()));
        // The handler carries every DevTools message; it must be polled for the whole test.
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        let page = browser.new_page("about:blank").await.unwrap();
        Chrome {
            browser,
            page,
            events,
            _profile: profile,
        }
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.events.abort();
    }
}

/// Debian's Chromium, or the one `CHROMIUM` names.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing; the dashboard test needs Chromium: apt-get install chromium (scripts/setup does it), \
         or set CHROMIUM to a Chrome or Chromium binary",
        path.display()
    );
    path
}

/// Types `key` into the sign-in form and sends it.
async fn sign_in(page: &Page, key: &str) {
    wait_for(
        page,
        "the key field",
        "!!document.querySelector('#key') || null",
    )
    .await;
    eval(page, "document.querySelector('#key').value = ''").await;
    page.find_element("#key")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(key)
        .await
        .unwrap();
    page.find_element("#sign-in-form button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn click(page: &Page, selector: &str) {
    wait_for(
        page,
        selector,
        &format!("!!document.querySelector({selector:?}) || null"),
    )
    .await;
    page.find_element(selector)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The request count the overview shows for hello, if it shows a number.
async fn requests_shown(page: &Page) -> Option<u64> {
    let text = eval(page, "document.querySelector('tr[data-function=\"hello\"] [data-stat=\"requests\"]')?.textContent ?? null").await;
    text.as_str()?.replace(',', "").parse().ok()
}

/// Waits for a line in the tail; returns how it came (`stream` or `store`).
async fn wait_for_line(page: &Page, message: &str) -> Value {
    let js = format!(
        "[...document.querySelectorAll('#log-lines .log-line')]
             .find(l => l.querySelector('.msg').textContent === {message:?})?.dataset.via ?? null"
    );
    wait_for(page, &format!("the log line {message:?}"), &js).await
}

/// Calls the data plane and returns the invocation's execution id.
async fn call_for_execution(node: &Node, path: &str) -> String {
    let resp = node.get(path).await;
    assert_eq!(resp.status(), 200);
    resp.headers()["x-glint-execution-id"]
        .to_str()
        .unwrap()
        .to_string()
}

async fn kv_put(node: &Node, store: &str, key: &str, value: &[u8]) {
    let admin = node.admin();
    let (status, body) = admin
        .send(admin.request(reqwest::Method::PUT, &format!("/api/v1/kv/{store}")))
        .await;
    assert!(
        status == 204 || status == 201,
        "create store: {status} {body}"
    );
    let req = admin
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/kv/{store}/keys/{key}"),
        )
        .body(value.to_vec());
    let (status, body) = admin.send(req).await;
    assert!((200..300).contains(&status), "set key: {status} {body}");
}

/// Evaluates `js` in the page (awaiting a promise); null if the page is mid-navigation.
async fn eval(page: &Page, js: &str) -> Value {
    match page.evaluate(js).await {
        Ok(result) => result.into_value::<Value>().unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Waits until `js` gives something other than null or false, and returns it; fails the
/// test, naming `what` and where the page is, after [`PATIENCE`].
async fn wait_for(page: &Page, what: &str, js: &str) -> Value {
    let found = wait_until(PATIENCE, || async {
        Some(eval(page, js).await).filter(|v| !v.is_null() && *v != Value::Bool(false))
    })
    .await;
    match found {
        Some(v) => v,
        None => {
            let url = eval(page, "location.href").await;
            let text = eval(page, "document.body?.innerText ?? ''").await;
            screenshot(page, "dashboard-failure.png").await;
            panic!(
                "waited {PATIENCE:?} for {what}; the page at {url} shows:\n{}\n(screenshot: target/dashboard-failure.png)",
                text.as_str().unwrap_or_default()
            )
        }
    }
}

async fn wait_until<T, F: Future<Output = Option<T>>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a full-page screenshot to `target/NAME`.
async fn screenshot(page: &Page, name: &str) {
    let path = screenshot_path(name);
    let params = ScreenshotParams::builder().full_page(true).build();
    if let Err(e) = page.save_screenshot(params, &path).await {
        eprintln!("could not save {}: {e}", path.display());
    } else {
        eprintln!("screenshot: {}", path.display());
    }
}

fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        repo_root().join(target)
    };
    std::fs::create_dir_all(&target).unwrap();
    Path::new(&target).join(name)
}
