//! A Glint node: the data plane, the admin API, and the state they share.
//!
//! A request enters at [`data_plane::serve`], is routed through the in-memory
//! [`routes::RouteTable`], and runs in `glint_runtime`. Deploys and every other change
//! come in through [`admin`], go through [`node::Node`] to the store, and then update the
//! route table. Guest log lines flow through [`logs`] to the store in batches.
//!
//! [`run`] starts a node and stops it gracefully when its shutdown future resolves.

pub mod admin;
pub mod dashboard;
pub mod data_plane;
pub mod error;
pub mod follow;
pub mod keys;
pub mod listener;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod routes;
pub mod secrets;
pub mod session;
pub mod tenants;
pub mod usage;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use glint_runtime::{Capabilities, NodeServices, Runtime, RuntimeConfig};
use glint_store::{StoreUrl, Stores};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ApiError;
pub use node::Node;

/// How long a stopping node lets in-flight requests finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long, at shutdown, the store gets to take the last log lines and usage, and
/// then to close.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Where functions, logs, usage, keys, secrets and KV are kept; `None` is
    /// `sqlite:<data dir>`.
    pub store: Option<StoreUrl>,
    /// Data plane address.
    pub listen: SocketAddr,
    /// Admin API address.
    pub admin_listen: SocketAddr,
    /// `GLINT_ADMIN_KEY`, if set.
    pub admin_key: Option<String>,
    /// Instances that may run at once on this node.
    pub max_instances: u32,
    /// PEM certificate chain and private key; with them both listeners speak TLS only.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub compiler: glint_runtime::Compiler,
    /// `GLINT_SECRET_KEY`, if set: the key that seals secrets, as 64 hex digits.
    pub secret_key: Option<String>,
    /// Where the secret key is kept otherwise; `<data dir>/secret.key` by default.
    pub secret_key_file: Option<PathBuf>,
    pub kv_limits: glint_store::KvLimits,
    /// This node's name and region, stamped on its log lines; filters match them.
    pub node_id: String,
    pub region: String,
    /// `--base-domain`: functions answer on `<function>.<tenant>.DOMAIN`, and tenants'
    /// routes on `<tenant>.DOMAIN`.
    pub base_domain: Option<String>,
    pub log_retention: logs::Retention,
    /// When compiled code is dropped from memory.
    pub eviction: node::Eviction,
    /// What each listener allows a client: header time and size, connections, body time.
    pub edge: listener::EdgeLimits,
    /// DNS servers for guests' outbound requests; empty means the system's.
    pub dns_servers: Vec<SocketAddr>,
    /// Threads of the data plane's own, one runtime each, and whether they are pinned to
    /// cores (see `listener::cores`); 0 threads serve it on the node's shared,
    /// work-stealing runtime.
    pub data_plane_threads: listener::DataPlaneThreads,
}

/// Warns, once at start, about a listener that strangers may reach in clear text.
fn warn_if_exposed(what: &str, addr: SocketAddr, tls: bool, admin_key_from_env: bool) {
    if tls || addr.ip().is_loopback() {
        return;
    }
    let key_note = if admin_key_from_env {
        " (GLINT_ADMIN_KEY is set, so the most powerful key would cross it)"
    } else {
        ""
    };
    tracing::warn!(
        "the {what} listens on {addr}, beyond loopback, without TLS: API keys and data cross the network in clear text{key_note}; \
         serve TLS with --tls-cert/--tls-key, or put the node behind a TLS proxy"
    );
}

/// The machine's host name, a node's default name.
pub fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "glint".to_string())
}

fn url_for(addr: SocketAddr, tls: bool) -> String {
    let port = addr.port();
    match (tls, addr.ip().is_unspecified() || addr.ip().is_loopback()) {
        // A certificate is far likelier to name `localhost` than an address.
        (true, true) => format!("https://localhost:{port}"),
        (true, false) => format!("https://{addr}"),
        (false, true) if addr.ip().is_unspecified() => format!("http://127.0.0.1:{port}"),
        (false, _) => format!("http://{addr}"),
    }
}

/// Every second, or sooner when more versions were loaded than `--max-loaded-versions`
/// allows: reused instances past their age are dropped, and compiled code evicted
/// ([`Node::sweep`]).
fn start_housekeeping(
    node: Arc<Node>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A full sweep each second, and one within 100 ms when loads pass the cap.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if last.elapsed() < Duration::from_secs(1) && !node.over_loaded_cap() {
                continue;
            }
            last = tokio::time::Instant::now();
            if node.sweep() > 0 {
                // Evicted code leaves freed heap behind; hand it back to the OS so RSS
                // falls with the number of loaded versions. Off the async workers: on a
                // large heap it takes a few milliseconds.
                let _ = tokio::task::spawn_blocking(release_free_heap).await;
            }
        }
    })
}

/// Returns free memory at the top and in the middle of the heap to the OS (glibc).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs a node until `shutdown` resolves, then drains in-flight requests, stores the
/// queued log lines and closes the store.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let server = Server::start(config).await?;
    println!("data plane: {}", server.data_url);
    println!("admin API:  {}", server.admin_url);
    println!("data dir:   {}", server.data_dir.display());
    shutdown.await;
    server.stop().await
}

/// A running node: its URLs, and what stopping it needs.
pub struct Server {
    pub data_url: String,
    pub admin_url: String,
    pub data_dir: PathBuf,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    log_writer: tokio::task::JoinHandle<()>,
    usage_flusher: tokio::task::JoinHandle<()>,
    stores: Stores,
    runtime: Arc<Runtime>,
}

impl Server {
    /// Opens the store, loads every function and starts both listeners.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
        let store_url = config
            .store
            .clone()
            .unwrap_or_else(|| StoreUrl::Sqlite(config.data_dir.clone()));
        let stores = Stores::open(&store_url, config.kv_limits).await?;
        let secret_key_file = config
            .secret_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("secret.key"));
        let secret_key =
            secrets::SecretKey::load_or_create(config.secret_key.as_deref(), &secret_key_file)?;
        let runtime = Arc::new(Runtime::new(RuntimeConfig {
            cache_dir: config.data_dir.join("compiled"),
            compiler: config.compiler,
            max_instances: config.max_instances,
            capabilities: Capabilities::standard(NodeServices {
                kv: stores.kv.clone(),
                dns_servers: config.dns_servers.clone(),
            })?,
            cache_key: secret_key.subkey("glint compile cache v1"),
        })?);

        let data_listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (data plane); is another node running? pick another with --listen",
            config.listen
        )
    })?;
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (admin API); pick another with --admin-listen",
                    config.admin_listen
                )
            })?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(listener::tls_acceptor(cert, key)?),
            None => None,
        };
        let key_from_env = config
            .admin_key
            .as_deref()
            .is_some_and(|k| !k.trim().is_empty());
        warn_if_exposed("data plane", config.listen, tls.is_some(), false);
        warn_if_exposed(
            "admin API",
            config.admin_listen,
            tls.is_some(),
            key_from_env,
        );
        let data_url = url_for(data_listener.local_addr()?, tls.is_some());
        let admin_url = url_for(admin_listener.local_addr()?, tls.is_some());

        let (stop_tx, stop_rx) = watch::channel(false);
        let identity = (config.node_id.clone(), config.region.clone());
        let (log_pipe, log_writer) =
            logs::start_writer(stores.logs.clone(), identity, stop_rx.clone());
        let routed = Arc::new(std::sync::OnceLock::<std::sync::Weak<Node>>::new());
        let threads_load = Arc::new(listener::ThreadsLoad::default());
        let collector = metrics::NodeCollector {
            runtime: runtime.clone(),
            data_plane: threads_load.clone(),
            log_lines_dropped: log_pipe.dropped.clone(),
            functions: {
                let routed = routed.clone();
                Arc::new(move || {
                    routed
                        .get()
                        .and_then(|n| n.upgrade())
                        .map_or(0, |n| n.routes.load().functions().count())
                })
            },
        };
        let meter = Arc::new(usage::Meter::new(collector));
        let usage_flusher =
            usage::start_flusher(meter.clone(), stores.usage.clone(), stop_rx.clone());
        let retention =
            logs::start_retention(stores.logs.clone(), config.log_retention, stop_rx.clone());
        let node = Arc::new(Node::new(node::NodeParts {
            store: stores.records.clone(),
            kv: stores.kv.clone(),
            secret_key,
            runtime,
            logs: log_pipe,
            meter,
            public_url: data_url.clone(),
            node_id: config.node_id.clone(),
            region: config.region.clone(),
            base_domain: config.base_domain.clone(),
            eviction: config.eviction,
            body_read_timeout: config.edge.body_read_timeout,
        }));
        let _ = routed.set(Arc::downgrade(&node));
        keys::bootstrap_admin_key(
            stores.keys.as_ref(),
            &config.data_dir,
            config.admin_key.clone(),
        )
        .await?;
        // The feed first, so no change made while the node loads is missed.
        let feed = stores.records.changes().await?;
        node.keys.reload(stores.keys.as_ref()).await?;
        node.tenants.reload(stores.records.as_ref()).await?;
        node.load_all().await?;

        let housekeeping = start_housekeeping(node.clone(), stop_rx.clone());
        let follower = follow::start_follower(node.clone(), feed, stop_rx.clone());
        let heartbeat = follow::start_heartbeat(node.clone(), data_url.clone(), stop_rx.clone());

        let data_service = {
            let node = node.clone();
            move |connection| {
                let node = node.clone();
                hyper::service::service_fn(move |req| {
                    let node = node.clone();
                    async move { Ok::<_, Infallible>(data_plane::serve(node, connection, req).await) }
                })
            }
        };
        let data = tokio::spawn(listener::serve(
            data_listener,
            tls.clone(),
            config.edge,
            data_service,
            stop_rx.clone(),
            (config.data_plane_threads, threads_load.clone()),
        ));
        let admin_service = TowerToHyperService::new(admin::router(node.clone()));
        let admin = tokio::spawn(listener::serve(
            admin_listener,
            tls,
            config.edge,
            move |_| admin_service.clone(),
            stop_rx.clone(),
            Default::default(),
        ));
        tracing::info!(%data_url, %admin_url, "glint node ready");
        Ok(Server {
            data_url,
            admin_url,
            data_dir: config.data_dir,
            stop_tx,
            tasks: vec![data, admin, retention, housekeeping, follower, heartbeat],
            log_writer,
            usage_flusher,
            stores,
            runtime: node.runtime.clone(),
        })
    }

    /// Stops accepting, lets in-flight requests finish, stores queued log lines and
    /// closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = self.stop_tx.send(true);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, futures::future::join_all(self.tasks)).await;
        // The last log lines and usage go to the store, but a store that cannot be
        // reached (NATS gone) must not keep the node from stopping.
        let flushed = tokio::time::timeout(FLUSH_TIMEOUT, async {
            let _ = self.log_writer.await;
            let _ = self.usage_flusher.await;
        })
        .await;
        if flushed.is_err() {
            tracing::warn!(
                "the store did not take the last log lines and usage within {FLUSH_TIMEOUT:?}; stopping without them"
            );
        }
        let runtime = self.runtime.clone();
        let _ = tokio::task::spawn_blocking(move || runtime.flush_cache()).await;
        match tokio::time::timeout(FLUSH_TIMEOUT, self.stores.close()).await {
            Ok(closed) => closed?,
            Err(_) => {
                tracing::warn!("the store did not close within {FLUSH_TIMEOUT:?}; stopping anyway");
                return Ok(());
            }
        }
        tracing::info!("stopped cleanly");
        Ok(())
    }
}
