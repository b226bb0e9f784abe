//! `glint serve`: its flags and the node it starts on the embedded store; and the
//! pieces `glint run` shares with it (compiler choice, the node's log, shutdown signals).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use crate::profiles;

/// Run a Glint node, alone on the embedded store or as one of many on NATS.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  glint serve --data-dir ./data --listen 127.0.0.1:8080\n  glint serve --store nats://10.0.0.1:4222,10.0.0.2:4222,10.0.0.3:4222 --nats-creds glint.creds"
)]
pub struct ServeArgs {
    /// Where the node keeps its database, compile cache and admin key.
    #[arg(long, env = "GLINT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where functions, logs, usage, keys, secrets and KV are kept: sqlite:DIR for a node
    /// alone (default: sqlite:<data dir>), or nats://HOST:PORT[,HOST:PORT...] (tls:// for
    /// TLS only) for many nodes on one NATS JetStream cluster.
    // Boxed, as the serve arguments are the largest variant of the commands by far.
    #[arg(long, value_name = "URL", env = "GLINT_STORE", value_parser = |url: &str| url.parse::<glint_store::StoreUrl>().map(Box::new))]
    store: Option<Box<glint_store::StoreUrl>>,
    /// NATS credentials file (a user JWT and nkey seed), for --store nats://.
    #[arg(long, value_name = "FILE", env = "GLINT_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// NATS token, for --store nats:// (prefer GLINT_NATS_TOKEN: flags show in `ps`).
    #[arg(long, env = "GLINT_NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,
    /// CA certificate (PEM) to verify the NATS servers with.
    #[arg(long, value_name = "FILE")]
    nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS servers that verify clients; with --nats-key.
    #[arg(long, value_name = "FILE", requires = "nats_key")]
    nats_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "nats_cert")]
    nats_key: Option<PathBuf>,
    /// Data plane address: functions answer here.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Admin API address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// Instances that may run at once on this node, across all functions.
    #[arg(long, default_value_t = 1000)]
    max_instances: u32,
    /// Format of the node's own log.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// TLS certificate chain (PEM). With --tls-key, both listeners serve HTTPS only.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Compiler for deployed components.
    #[arg(long, value_enum, default_value_t = CompilerArg::Cranelift)]
    compiler: CompilerArg,
    /// The file with the key that seals secrets (made on first start). Keep it apart
    /// from backups of the data dir. GLINT_SECRET_KEY (64 hex digits) overrides it.
    #[arg(long, env = "GLINT_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Largest KV value, in bytes.
    #[arg(long, default_value_t = glint_store::KvLimits::default().max_value_bytes)]
    kv_max_value_bytes: usize,
    /// Quota of each KV store (keys plus values), in MiB.
    #[arg(long, default_value_t = glint_store::KvLimits::default().store_quota_bytes / (1024 * 1024))]
    kv_store_quota_mb: u64,
    /// This node's name on its log lines (default: the host name).
    #[arg(long, env = "GLINT_NODE_ID")]
    node_id: Option<String>,
    /// This node's region: on its log lines and heartbeats, and in `glint regions`.
    #[arg(long, env = "GLINT_REGION", default_value = "local")]
    region: String,
    /// The domain under which each tenant's functions answer: `<function>.<tenant>.DOMAIN`
    /// (the whole path is the function's) and `<tenant>.DOMAIN/<route>`. Other hosts
    /// serve the routes of the tenant `default`. Point a wildcard DNS name at the node.
    #[arg(long, env = "GLINT_BASE_DOMAIN", value_parser = parse_base_domain)]
    base_domain: Option<String>,
    /// Guest log lines older than this are deleted: 30m, 12h, 7d...
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    log_max_age: std::time::Duration,
    /// Guest log lines beyond this size, oldest first, are deleted.
    #[arg(long, default_value_t = 1024)]
    log_max_mb: u64,
    /// How often old log lines are pruned.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    log_prune_every: std::time::Duration,
    /// Drop a version's compiled code from memory after it has served nothing for
    /// this long, unless its manifest pins it with `[scaling] min_instances >= 1`;
    /// its next request maps it back in from the compile cache (no recompile).
    /// 0 keeps everything loaded.
    #[arg(long, default_value = "10m", value_parser = parse_duration_or_zero)]
    evict_idle_after: std::time::Duration,
    /// Most versions whose compiled code stays in memory; beyond it, the least
    /// recently used (unpinned) are dropped, as for idleness.
    #[arg(long, default_value_t = glint_node::node::Eviction::default().max_loaded)]
    max_loaded_versions: usize,
    /// Serve the data plane on this many threads of its own, one runtime each, every
    /// connection staying on the thread with the fewest open when it came (0: on the
    /// node's shared, work-stealing runtime). Faster under load (no request leaves its
    /// thread); a busy guest delays the other connections of its thread.
    #[arg(long, default_value_t = 0, env = "GLINT_DATA_PLANE_THREADS")]
    data_plane_threads: usize,
    /// Pin data-plane thread i to the i-th core the node may run on, and deal each
    /// connection to the thread on the core its packets arrive on (thread per core).
    /// Needs a core for each thread; give nodes that share a machine their own cores
    /// (taskset, cgroups).
    #[arg(long, env = "GLINT_DATA_PLANE_PIN")]
    data_plane_pin: bool,
    /// Keep each data-plane thread polling for this many microseconds after its
    /// connections last read or wrote, instead of sleeping until the next packet: lower
    /// latency at low load, for CPU time the thread would otherwise leave idle; a
    /// connection that sends something at least once a window keeps its thread polling.
    /// 0 (the default) never polls; 50 is a usual choice, as for Linux's
    /// net.core.busy_poll; at most 10000. Needs --data-plane-threads.
    #[arg(
        long,
        default_value_t = 0,
        env = "GLINT_DATA_PLANE_BUSY_POLL",
        value_name = "MICROS",
        value_parser = clap::value_parser!(u64).range(0..=10_000)
    )]
    data_plane_busy_poll: u64,
    /// Open connections each listener accepts; more are closed at once.
    #[arg(long, default_value_t = glint_node::listener::EdgeLimits::default().max_connections)]
    max_connections: usize,
    /// Largest request line plus headers, in bytes; bigger requests get 431.
    #[arg(long, default_value_t = glint_node::listener::EdgeLimits::default().max_header_bytes)]
    max_header_bytes: usize,
    /// Time a client has to send its request headers (and how long an idle HTTP/1
    /// connection stays open).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: std::time::Duration,
    /// Time a client has to send a request's whole body; slower ones get 408.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    body_read_timeout: std::time::Duration,
    /// A DNS server for guests' outbound requests, as IP or IP:PORT (repeat for
    /// more). Default: the system's resolver configuration.
    #[arg(long = "dns-server", value_name = "ADDR", value_parser = parse_dns_server)]
    dns_servers: Vec<SocketAddr>,
}

/// The compiler a node uses for components.
#[derive(Clone, Copy, ValueEnum)]
pub enum CompilerArg {
    /// Optimising: the fastest code (the default for `serve`).
    Cranelift,
    /// Baseline: compiles several times faster (the default for `run`).
    Winch,
}

impl From<CompilerArg> for glint_runtime::Compiler {
    fn from(c: CompilerArg) -> Self {
        match c {
            CompilerArg::Cranelift => glint_runtime::Compiler::Cranelift,
            CompilerArg::Winch => glint_runtime::Compiler::Winch,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    init_tracing_at("info,wasmtime=warn,cranelift=warn", args.log_format);
    if args.data_plane_pin && args.data_plane_threads == 0 {
        anyhow::bail!(
            "--data-plane-pin pins the data plane's own threads, and there are none: add --data-plane-threads N (say, the number of cores)"
        );
    }
    if args.data_plane_busy_poll > 0 && args.data_plane_threads == 0 {
        anyhow::bail!(
            "--data-plane-busy-poll (or GLINT_DATA_PLANE_BUSY_POLL) keeps the data plane's own threads polling, and there are none: add --data-plane-threads N (say, the number of cores), or drop --data-plane-busy-poll"
        );
    }
    let store = match args.store.map(|url| *url) {
        Some(glint_store::StoreUrl::Nats(mut url)) => {
            url.auth = glint_store::nats::NatsAuth {
                creds: args.nats_creds,
                token: args.nats_token,
                ca: args.nats_ca,
                cert: args.nats_cert.zip(args.nats_key),
            };
            Some(glint_store::StoreUrl::Nats(url))
        }
        other => {
            if args.nats_creds.is_some() || args.nats_token.is_some() || args.nats_ca.is_some() {
                anyhow::bail!(
                    "--nats-creds, --nats-token and --nats-ca go with --store nats://...; this node's store is not NATS"
                );
            }
            other
        }
    };
    let config = glint_node::NodeConfig {
        data_dir: args.data_dir.unwrap_or_else(profiles::data_dir),
        store,
        listen: args.listen,
        admin_listen: args.admin_listen,
        admin_key: std::env::var("GLINT_ADMIN_KEY").ok(),
        max_instances: args.max_instances,
        tls: args.tls_cert.zip(args.tls_key),
        compiler: args.compiler.into(),
        secret_key: std::env::var("GLINT_SECRET_KEY").ok(),
        secret_key_file: args.secret_key_file,
        kv_limits: glint_store::KvLimits {
            max_value_bytes: args.kv_max_value_bytes,
            store_quota_bytes: args.kv_store_quota_mb * 1024 * 1024,
            ..Default::default()
        },
        node_id: args.node_id.unwrap_or_else(glint_node::default_node_id),
        region: args.region,
        base_domain: args.base_domain,
        log_retention: glint_node::logs::Retention {
            max_age: args.log_max_age,
            max_bytes: args.log_max_mb * 1024 * 1024,
            every: args.log_prune_every,
        },
        eviction: glint_node::node::Eviction {
            idle_after: args.evict_idle_after,
            max_loaded: args.max_loaded_versions,
        },
        edge: glint_node::listener::EdgeLimits {
            max_connections: args.max_connections,
            max_header_bytes: args.max_header_bytes,
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            ..Default::default()
        },
        dns_servers: args.dns_servers,
        data_plane_threads: glint_node::listener::DataPlaneThreads {
            count: args.data_plane_threads,
            pin: args.data_plane_pin,
            busy_poll: (args.data_plane_busy_poll > 0)
                .then(|| std::time::Duration::from_micros(args.data_plane_busy_poll)),
        },
    };
    glint_node::run(config, shutdown_signal()).await
}

/// A duration of 1s or more, or `0` for never, for clap.
fn parse_duration_or_zero(text: &str) -> Result<std::time::Duration, String> {
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let d = parse_duration(text)?;
    if d < std::time::Duration::from_secs(1) {
        return Err("use 1s or more (the node checks once a second), or 0 for never".into());
    }
    Ok(d)
}

/// `10.0.0.53` or `10.0.0.53:5353` (port 53 when left out), for clap.
fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("{text:?} is not an IP address or IP:PORT, e.g. 10.0.0.53 or 127.0.0.1:5353")
        })
}

/// `90s`, `10m`, `12h`, `7d` (or humantime's longer forms, `1h 30m`) as a duration of
/// more than zero, for clap. Zero is refused here: where it means something (never),
/// the flag says so through `parse_duration_or_zero`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a duration; write 90s, 10m, 12h or 7d"))
}

/// Sets up the process's own log on stderr: `default` is the filter unless RUST_LOG
/// gives one.
pub fn init_tracing_at(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed now, before the node
/// starts, so a signal that arrives during start-up still stops it cleanly.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, int) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `--base-domain`: a DNS name of at least two labels, without a scheme, port or path.
fn parse_base_domain(text: &str) -> Result<String, String> {
    let domain = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.split('.').count() < 2 || !domain.split('.').all(label_ok) {
        return Err(format!(
            "{text:?} is not a domain name; give one such as fn.example.com (no scheme, port or path), \
             whose subdomains point at this node"
        ));
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::parse_base_domain;

    #[test]
    fn a_base_domain_is_a_dns_name() {
        assert_eq!(
            parse_base_domain("Fn.Example.com.").unwrap(),
            "fn.example.com"
        );
        for bad in [
            "example",
            "https://fn.example.com",
            "fn.example.com:8080",
            "fn..com",
            "-a.com",
            "a b.com",
            "",
        ] {
            assert!(parse_base_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_take_the_forms_the_flags_document() {
        use std::time::Duration;
        for (text, secs) in [("7d", 604_800), ("60s", 60), ("10m", 600), ("12h", 43_200)] {
            assert_eq!(super::parse_duration(text), Ok(Duration::from_secs(secs)));
        }
        assert_eq!(
            super::parse_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        for bad in ["0", "5", "7", "soon", ""] {
            let err = super::parse_duration(bad).unwrap_err();
            assert!(err.contains("write 90s, 10m, 12h or 7d"), "{bad:?}: {err}");
        }
        assert_eq!(super::parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(
            super::parse_duration_or_zero("2s"),
            Ok(Duration::from_secs(2))
        );
        assert!(super::parse_duration_or_zero("500ms").is_err());
    }
}
