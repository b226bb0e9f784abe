//! Support for Glint's end-to-end tests: real `glint serve` processes on loopback ports,
//! real HTTP clients, and the guest components built from this repository.
//!
//! `.ci/run` builds the `glint` binary and the guests before the tests run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::Value;

pub mod nats;
pub mod netproxy;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `glint` binary next to this test binary (target/<profile>/glint).
pub fn glint_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("glint");
    assert!(
        bin.exists(),
        "{} is missing; build it first: cargo build -p glint-cli (or run .ci/run)",
        bin.display()
    );
    bin
}

/// Runs `glint serve` with `args` (after loopback ports and a data directory of its own)
/// and the environment changes `vars` (`None` removes one), for a start that must fail:
/// what it wrote to stderr. Fails the test if it is still running after 60 s, having
/// started after all.
pub fn serve_refused<A: AsRef<std::ffi::OsStr>>(
    args: &[A],
    vars: &[(&str, Option<&str>)],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(glint_bin());
    for (name, value) in vars {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let mut child = command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start glint serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "glint serve {:?} started when it should have refused to",
                args.iter().map(|a| a.as_ref()).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert!(
        !status.success(),
        "glint serve should have failed, and exited with {status}: {said}"
    );
    said
}

/// A guest component built from `examples/` or `tests/fixtures/`.
pub fn guest(name: &str) -> Vec<u8> {
    let path = repo_root().join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; build the guests first: cargo build --release --target wasm32-wasip2 \
             --manifest-path examples/Cargo.toml, and the same for tests/fixtures/Cargo.toml (or run .ci/run)",
            path.display()
        )
    })
}

/// A Python or JavaScript guest that `glint build` made in `<repo>/<dir>/dist/<name>.wasm`.
pub fn built(dir: &str, name: &str) -> Vec<u8> {
    let path = repo_root().join(dir).join(format!("dist/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; build it first: target/debug/glint build {dir} (or run scripts/build-guests)",
            path.display()
        )
    })
}

/// A small HTTP/1.1 server on loopback that answers every request with `upstream says hi`
/// and counts the requests it got. Returns its port.
pub fn upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let body = "upstream says hi";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

/// A self-signed certificate a test node serves, kept on disk while the test runs.
pub struct TestCert {
    pub path: PathBuf,
    pub pem: String,
    _dir: tempfile::TempDir,
}

/// One running `glint serve`, killed when dropped.
pub struct Node {
    pub data_dir: PathBuf,
    pub data_url: String,
    pub admin_url: String,
    pub key: String,
    /// What the node printed to stdout before it was ready.
    pub banner: String,
    child: Option<Child>,
    /// The extra `glint serve` arguments and `GLINT_ADMIN_KEY`, kept for `restart`.
    args: Vec<String>,
    env_key: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts a node on a fresh data dir.
    pub fn start() -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let mut node = Node::start_in(tmp.path());
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node whose admin key comes from `GLINT_ADMIN_KEY`.
    pub fn start_with_admin_key(key: &str) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let mut node = Node::launch(tmp.path(), Some(key), &[], &[]);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node on `data_dir`, on free loopback ports, and waits until it serves.
    pub fn start_in(data_dir: &Path) -> Node {
        Node::launch(data_dir, None, &[], &[])
    }

    /// Starts a node with extra `glint serve` arguments, such as TLS files.
    pub fn start_with_args(args: &[&str]) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let mut node = Node::launch(tmp.path(), None, args, &[]);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node with `GLINT_ADMIN_KEY` set to `admin_key` and extra arguments, such
    /// as one of several nodes on one store.
    pub fn start_with(admin_key: &str, args: &[&str]) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let mut node = Node::launch(tmp.path(), Some(admin_key), args, &[]);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node with these environment variables set (`GLINT_*` settings).
    pub fn start_with_env(vars: &[(&str, &str)]) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let mut node = Node::launch(tmp.path(), None, &[], vars);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node serving both listeners over TLS with a fresh self-signed certificate
    /// for `localhost`. Returns the node and the certificate (PEM file and text).
    pub fn start_tls() -> (Node, TestCert) {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        let node = Node::start_with_args(&[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ]);
        let pem = cert.cert.pem();
        (
            node,
            TestCert {
                path: cert_path,
                pem,
                _dir: dir,
            },
        )
    }

    fn launch(
        data_dir: &Path,
        admin_key: Option<&str>,
        extra_args: &[&str],
        vars: &[(&str, &str)],
    ) -> Node {
        std::fs::create_dir_all(data_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("node.log"))
            .unwrap();
        let mut command = Command::new(glint_bin());
        match admin_key {
            Some(k) => command.env("GLINT_ADMIN_KEY", k),
            None => command.env_remove("GLINT_ADMIN_KEY"),
        };
        command.envs(vars.iter().copied());
        command.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ]);
        if !extra_args.contains(&"--max-instances") {
            command.args(["--max-instances", "200"]);
        }
        let mut args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        if nats::nodes_on_nats() && !args.iter().any(|a| a == "--store") {
            args.extend(["--store".to_string(), nats::fresh_store_url()]);
        }
        // Nodes on one store share the key that seals secrets, as a real cluster's must.
        if args.iter().any(|a| a.starts_with("nats://")) {
            command.env("GLINT_SECRET_KEY", "5eed".repeat(16));
        }
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start glint serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut data, mut banner) = (None, String::new());
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                banner.push_str(&line);
                banner.push('\n');
                if let Some(url) = line.strip_prefix("data plane: ") {
                    data = Some(url.trim().to_string());
                }
                if let Some(url) = line.strip_prefix("admin API:  ") {
                    let _ = tx.send((
                        data.clone().unwrap_or_default(),
                        url.trim().to_string(),
                        banner.clone(),
                    ));
                }
            }
        });
        let (data_url, admin_url, banner) = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                let log = std::fs::read_to_string(data_dir.join("node.log")).unwrap_or_default();
                panic!("glint serve did not start within 120 s; its log:\n{log}")
            });
        let key = match admin_key {
            Some(k) => k.to_string(),
            None => std::fs::read_to_string(data_dir.join("admin-key"))
                .unwrap()
                .trim()
                .to_string(),
        };
        Node {
            data_dir: data_dir.to_path_buf(),
            data_url,
            admin_url,
            key,
            banner,
            child: Some(child),
            args,
            env_key: admin_key.map(str::to_string),
            _tmp: None,
        }
    }

    /// The store the node runs on, as `glint serve --store` takes it: its `--store`, or
    /// `sqlite:` its data dir.
    pub fn store_url(&self) -> String {
        match self.args.iter().position(|a| a == "--store") {
            Some(i) => self.args[i + 1].clone(),
            None => format!("sqlite:{}", self.data_dir.display()),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGTERM, then waits for a clean exit. Returns whether it exited with success.
    pub fn stop(&mut self) -> bool {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, with no chance to clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts a new process on the same data dir and arguments (after `stop` or `kill9`).
    pub fn restart(&mut self) {
        let key = self.env_key.clone();
        self.restart_with_admin_key(key.as_deref());
    }

    /// Restarts with `GLINT_ADMIN_KEY` set to `key` (or unset). Without one, the node's
    /// `key` is read from `DIR/admin-key`, which only a first start writes.
    pub fn restart_with_admin_key(&mut self, key: Option<&str>) {
        assert!(
            self.child.is_none(),
            "stop or kill the node before restarting it"
        );
        self.env_key = key.map(str::to_string);
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let fresh = Node::launch(&self.data_dir, key, &args, &[]);
        self.data_url = fresh.data_url.clone();
        self.admin_url = fresh.admin_url.clone();
        self.key = fresh.key.clone();
        self.banner = fresh.banner.clone();
        let mut fresh = fresh;
        self.child = fresh.child.take();
    }

    /// Runs the `glint` CLI against this node with the admin key `key`; returns whether
    /// it succeeded, its stdout and its stderr.
    pub fn cli(&self, key: &str, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(glint_bin())
            .args(args)
            .env("GLINT_API_URL", &self.admin_url)
            .env("GLINT_API_KEY", key)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default()
    }

    /// `/metrics`, parsed: each sample's value by its name and labels.
    pub async fn metrics(&self) -> Vec<(String, std::collections::HashMap<String, String>, f64)> {
        let text = self
            .admin()
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
        scrape
            .samples
            .into_iter()
            .map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
                    prometheus_parse::Value::Summary(_) => 0.0,
                };
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (s.metric, labels, value)
            })
            .collect()
    }

    /// A client that sends this node's admin key.
    pub fn admin(&self) -> Admin {
        Admin {
            base: self.admin_url.clone(),
            key: Some(self.key.clone()),
            http: http_client(),
        }
    }

    /// Makes tenant `name` with the node's operator key; returns the admin API as the
    /// tenant's first admin key, and that key.
    pub async fn tenant(&self, name: &str) -> (Admin, String) {
        let operator = self.admin();
        let req = operator
            .request(reqwest::Method::POST, "/api/v1/tenants")
            .json(&serde_json::json!({ "name": name }));
        let (status, made) = operator.send(req).await;
        assert_eq!(status, 201, "tenant {name}: {made}");
        let key = made["key"].as_str().unwrap().to_string();
        (self.admin_with_key(Some(&key)), key)
    }

    pub fn admin_with_key(&self, key: Option<&str>) -> Admin {
        Admin {
            base: self.admin_url.clone(),
            key: key.map(str::to_string),
            http: http_client(),
        }
    }

    /// GET on the data plane.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        http_client()
            .get(format!("{}{path}", self.data_url))
            .send()
            .await
            .unwrap()
    }

    /// GET on the data plane, returning status and body text.
    pub async fn call(&self, path: &str) -> (u16, String) {
        self.send(reqwest::Method::GET, path, Vec::new()).await
    }

    /// Any method on the data plane, returning status and body text.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, String) {
        self.send_to(None, method, path, body).await
    }

    /// GET on the data plane with `host` as the `Host` header (`hello.acme.fn.test`), as
    /// a wildcard DNS name pointing at the node would send it.
    pub async fn call_host(&self, host: &str, path: &str) -> (u16, String) {
        self.send_to(Some(host), reqwest::Method::GET, path, Vec::new())
            .await
    }

    /// Any method on the data plane, with `host` as the `Host` header when given.
    pub async fn send_to(
        &self,
        host: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = http_client()
            .request(method, format!("{}{path}", self.data_url))
            .body(body);
        if let Some(host) = host {
            req = req.header(reqwest::header::HOST, host);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failed test shows the node's errors and warnings.
        // GLINT_TEST_KEEP_LOGS=DIR keeps every node's whole log there, named by its
        // data port (with RUST_LOG=debug, say, to see what a flaky test's nodes did).
        if let Some(dir) = std::env::var_os("GLINT_TEST_KEEP_LOGS") {
            let port = self.data_url.rsplit(':').next().unwrap_or("node");
            let _ = std::fs::copy(
                self.data_dir.join("node.log"),
                Path::new(&dir).join(format!("node-{port}.log")),
            );
        }
        if std::thread::panicking() {
            for line in self
                .log()
                .lines()
                .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            {
                eprintln!("node log: {line}");
            }
        }
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An HTTP client that speaks HTTP/2 over cleartext from the start: all its requests
/// to a node go over one connection, served on one data-plane thread.
pub fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The admin API, as a test talks to it.
pub struct Admin {
    pub base: String,
    pub key: Option<String>,
    pub http: reqwest::Client,
}

impl Admin {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// Sends and returns the status and the JSON body (Null when empty).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// GET, returning the body as text (such as `/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::PUT, path).json(&body))
            .await
    }

    /// Deploys `component` with `manifest` as function `name`.
    pub async fn deploy(&self, name: &str, manifest: &str, component: Vec<u8>) -> (u16, Value) {
        self.deploy_with(name, "", manifest, component).await
    }

    /// Deploys as [`Admin::deploy`] does, with `query` (`?wait_seconds=2`, say) added to
    /// the deploy's URL.
    pub async fn deploy_with(
        &self,
        name: &str,
        query: &str,
        manifest: &str,
        component: Vec<u8>,
    ) -> (u16, Value) {
        let form = Form::new()
            .text("manifest", manifest.to_string())
            .part("component", Part::bytes(component).file_name("c.wasm"));
        self.send(
            self.request(
                reqwest::Method::POST,
                &format!("/api/v1/functions/{name}/versions{query}"),
            )
            .multipart(form),
        )
        .await
    }

    /// Deploys and asserts the node accepted it; returns the answer.
    pub async fn deploy_ok(&self, name: &str, manifest: &str, component: Vec<u8>) -> Value {
        let (status, body) = self.deploy(name, manifest, component).await;
        assert_eq!(status, 201, "deploy of {name} refused: {body}");
        body
    }

    /// Deploys the hello example as `hello`, greeting with `greeting`.
    pub async fn deploy_hello(&self, greeting: &str) -> Value {
        self.deploy_ok("hello", &hello_manifest(greeting), guest("hello"))
            .await
    }

    /// Deploys the counter example (`examples/counter`, KV store `counters`) as `counter`.
    pub async fn deploy_counter(&self) -> Value {
        let manifest =
            std::fs::read_to_string(repo_root().join("examples/counter/glint.toml")).unwrap();
        self.deploy_ok("counter", &manifest, guest("counter")).await
    }

    /// Log lines of a function, oldest first.
    pub async fn logs(&self, name: &str, query: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/api/v1/functions/{name}/logs?{query}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["lines"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 10 s) for log lines of one execution that satisfy `pred`.
    pub async fn wait_for_logs(
        &self,
        name: &str,
        execution_id: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self
                .logs(name, &format!("execution_id={execution_id}&lines=1000"))
                .await;
            if pred(&lines) || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The hello example's manifest with a greeting of our choosing.
pub fn hello_manifest(greeting: &str) -> String {
    format!("name = \"hello\"\n[env]\nGREETING = \"{greeting}\"\n")
}

/// A DNS server on loopback (UDP) for one test: it answers A queries for `name` with
/// `answers` in turn (the last one again once they run out), with a TTL of 0 so nothing
/// caches them, and every other query with no records. Returns its address and the count
/// of A queries for `name` it has answered.
pub fn dns_server(
    name: &str,
    answers: Vec<std::net::Ipv4Addr>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let wanted = name.trim_end_matches('.').to_ascii_lowercase();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Some(reply) = dns_reply(&buf[..n], &wanted, &answers, &counter) else {
                continue;
            };
            let _ = socket.send_to(&reply, peer);
        }
    });
    (addr, asked)
}

/// The answer to one DNS query, as RFC 1035 lays it out: the query's header and
/// question echoed back, plus one A record when it asks for `wanted`.
fn dns_reply(
    query: &[u8],
    wanted: &str,
    answers: &[std::net::Ipv4Addr],
    asked: &std::sync::atomic::AtomicUsize,
) -> Option<Vec<u8>> {
    use std::sync::atomic::Ordering;
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to a zero byte, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    while i < query.len() && query[i] != 0 {
        let len = query[i] as usize;
        labels.push(String::from_utf8_lossy(query.get(i + 1..i + 1 + len)?).to_ascii_lowercase());
        i += 1 + len;
    }
    let question_end = i + 5;
    let qtype = u16::from_be_bytes([*query.get(i + 1)?, *query.get(i + 2)?]);
    let name = labels.join(".");
    let answer = (name == wanted && qtype == 1).then(|| {
        let n = asked.fetch_add(1, Ordering::SeqCst);
        answers[n.min(answers.len() - 1)]
    });
    let mut reply = Vec::with_capacity(question_end + 16);
    reply.extend_from_slice(&query[..2]); // id
    reply.extend_from_slice(&[0x81, 0x80]); // a response, recursion available, no error
    reply.extend_from_slice(&[0, 1]); // one question
    reply.extend_from_slice(&[0, u8::from(answer.is_some())]); // answers
    reply.extend_from_slice(&[0, 0, 0, 0]); // no authority or additional records
    reply.extend_from_slice(query.get(12..question_end)?);
    if let Some(ip) = answer {
        reply.extend_from_slice(&[0xc0, 12]); // the name, pointing at the question
        reply.extend_from_slice(&[0, 1, 0, 1]); // type A, class IN
        reply.extend_from_slice(&[0, 0, 0, 0]); // TTL 0
        reply.extend_from_slice(&[0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}

/// A custom section (id 0) holding `payload`, as a toolchain may append to a component.
pub fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut section = vec![0];
    leb(content.len(), &mut section);
    section.extend(content);
    section
}

/// Runs `check` every 50 ms until it gives `Some`, for up to `limit`; panics naming
/// `what` (and the last thing `check` saw, from `seen`) if it never does.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A path of the admin API's OpenAPI document with a value for each parameter: each
/// `{param}` from `values`, and `{key}` as `kv_key` in KV paths (where it may hold '/')
/// or `env_key` in env paths.
pub fn fill_path(path: &str, values: &[(&str, &str)], kv_key: &str, env_key: &str) -> String {
    let key = if path.starts_with("/api/v1/kv/") {
        kv_key
    } else {
        env_key
    };
    let mut out = path.replace("{key}", key);
    for (param, value) in values {
        out = out.replace(&format!("{{{param}}}"), value);
    }
    out
}
