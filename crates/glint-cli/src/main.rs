//! `glint`: the command line for Glint. It parses arguments and calls the node library
//! (`glint serve`), the developer-loop modules (`new`, `build`, `run`) or the admin API
//! (everything else).

mod client;
mod dev;
mod kv;
mod lifecycle;
mod output;
mod profiles;
mod project;
mod scaffold;
mod secret;
mod toolchain;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use client::Client;
use lifecycle::{Call, LogFilter};

#[derive(Parser)]
#[command(name = "glint", version, about = "Glint: WebAssembly functions at the edge", long_about = None)]
struct Cli {
    /// Admin API of the node to talk to [default: the profile's, else http://127.0.0.1:9090]
    #[arg(long, global = true, env = "GLINT_API_URL")]
    url: Option<String>,
    /// API key [default: the profile's, else the local node's admin-key file]
    #[arg(long, global = true, env = "GLINT_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Extra CA certificate (PEM) to trust, for a node with a self-signed certificate.
    #[arg(long, global = true, env = "GLINT_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// A profile saved by `glint login`.
    #[arg(long, global = true, env = "GLINT_PROFILE")]
    profile: Option<String>,
    /// Output format for listings.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Format {
    Table,
    Json,
}

/// The compiler a node uses for components.
#[derive(Clone, Copy, ValueEnum)]
enum CompilerArg {
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
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Glint node on the embedded store.
    #[command(after_help = "Example:\n  glint serve --data-dir ./data --listen 127.0.0.1:8080")]
    Serve {
        /// Where the node keeps its database, compile cache and admin key.
        #[arg(long, env = "GLINT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Where functions, logs, usage, keys, secrets and KV are kept: sqlite:DIR
        /// (default: sqlite:<data dir>).
        // Boxed, as Serve is the largest variant by far (clippy's large_enum_variant).
        #[arg(long, value_name = "URL", value_parser = |url: &str| url.parse::<glint_store::StoreUrl>().map(Box::new))]
        store: Option<Box<glint_store::StoreUrl>>,
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
        /// This node's region on its log lines.
        #[arg(long, env = "GLINT_REGION", default_value = "local")]
        region: String,
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
    },
    /// Make a new function project, ready to build and run.
    #[command(
        after_help = "Examples:\n  glint new hello --lang rust\n  glint new api --lang python\n  glint new edge --lang js"
    )]
    New {
        name: String,
        #[arg(long, short, value_enum)]
        lang: project::Lang,
        /// Folder to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a function project into a component with its language's toolchain.
    #[command(after_help = "Examples:\n  glint build\n  glint build path/to/function")]
    Build {
        /// The project folder (default: this folder).
        path: Option<PathBuf>,
    },
    /// Build, run on a local node with the project's own data (.glint/), and stream logs.
    #[command(
        after_help = "Examples:\n  glint run\n  glint run --watch\n  glint run path/to/function --listen 127.0.0.1:3000"
    )]
    Run {
        /// The project folder (default: this folder).
        path: Option<PathBuf>,
        /// Rebuild and redeploy on every saved change.
        #[arg(long, short)]
        watch: bool,
        /// Data plane address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin API address (default: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        admin_listen: SocketAddr,
        /// Compiler for the local node: winch compiles large Python and JS components
        /// several times faster, so a saved change serves sooner.
        #[arg(long, value_enum, default_value_t = CompilerArg::Winch)]
        compiler: CompilerArg,
    },
    /// Deploy a function folder (with glint.toml) or a .wasm component.
    #[command(
        after_help = "Examples:\n  glint deploy\n  glint deploy examples/hello\n  glint deploy app.wasm --name app\n  glint deploy --alias canary"
    )]
    Deploy {
        /// The function folder or .wasm file (default: this folder).
        path: Option<PathBuf>,
        /// Function name; defaults to the manifest's `name`, else the folder or file name.
        #[arg(long)]
        name: Option<String>,
        /// Alias to point at the new version.
        #[arg(long, default_value = "latest", conflicts_with = "no_alias")]
        alias: String,
        /// Upload the version without moving any alias.
        #[arg(long)]
        no_alias: bool,
        /// Deploy the component already built, without building the folder first.
        #[arg(long)]
        no_build: bool,
    },
    /// List the deployed functions.
    #[command(after_help = "Example:\n  glint list --output json")]
    List,
    /// Show a function: route, versions, aliases, limits and env var names.
    #[command(after_help = "Example:\n  glint info hello")]
    Info { name: String },
    /// Delete a function with all its versions.
    #[command(after_help = "Example:\n  glint delete hello --force")]
    Delete {
        name: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        force: bool,
    },
    /// List a function's versions.
    #[command(after_help = "Example:\n  glint versions hello")]
    Versions { name: String },
    /// List, show or set aliases (weighted for canary releases).
    #[command(
        subcommand,
        after_help = "Examples:\n  glint alias list hello\n  glint alias info hello latest\n  glint alias set hello latest v1=0.9 v2=0.1"
    )]
    Alias(AliasCommand),
    /// Point an alias (default `latest`) back at the version before the newest it serves.
    #[command(after_help = "Example:\n  glint rollback hello")]
    Rollback {
        name: String,
        #[arg(long, default_value = "latest")]
        alias: String,
    },
    /// Save a version's component (default: the one `latest` serves).
    #[command(after_help = "Example:\n  glint download hello v2 -o hello.wasm")]
    Download {
        name: String,
        version: Option<String>,
        #[arg(long, short = 'o')]
        output_file: Option<PathBuf>,
    },
    /// List, set or unset a function's env vars.
    #[command(
        subcommand,
        after_help = "Examples:\n  glint env list hello\n  glint env set hello GREETING Hi\n  glint env unset hello GREETING"
    )]
    Env(EnvCommand),
    /// The tenant's KV stores: list stores, and get, set, delete and list keys.
    #[command(
        subcommand,
        after_help = "Examples:\n  glint kv stores\n  glint kv set counters hits 0\n  glint kv get counters hits\n  glint kv list counters --prefix user/\n  glint kv set assets logo.png --file logo.png"
    )]
    Kv(KvCommand),
    /// The tenant's secrets: set (value from stdin), list names, delete.
    #[command(
        subcommand,
        after_help = "Examples:\n  glint secret set API_TOKEN            # type the value; input is hidden\n  printf %s \"$TOKEN\" | glint secret set API_TOKEN\n  glint secret list\n\nA function reads a secret when its glint.toml lists it: secrets = [\"API_TOKEN\"]"
    )]
    Secret(SecretCommand),
    /// Show a function's log lines.
    #[command(
        after_help = "Examples:\n  glint logs hello --since 10m\n  glint logs hello --level error --lines 50"
    )]
    Logs {
        name: String,
        #[command(flatten)]
        filter: LogArgs,
    },
    /// Show whether a function is ready, and its versions' state on the node.
    #[command(after_help = "Example:\n  glint status hello")]
    Status { name: String },
    /// Show what a function used per period: requests, errors, bytes, time, GB-seconds.
    #[command(
        after_help = "Examples:\n  glint metrics hello --period hour\n  glint metrics hello --period minute --since 30m\n  glint metrics --period day      # every function together"
    )]
    Metrics {
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = lifecycle::Period::Hour)]
        period: lifecycle::Period,
        /// Start of the range: 30m, 2d, or epoch milliseconds (default: a span that fits
        /// the period).
        #[arg(long)]
        since: Option<String>,
    },
    /// Call a function and print its response.
    #[command(
        after_help = "Examples:\n  glint execute hello\n  glint execute hello -X POST --path /echo -d '{\"a\":1}' -H 'content-type: application/json' -i"
    )]
    Execute {
        name: String,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Check a node and API key, and save them as a profile.
    #[command(
        after_help = "Example:\n  glint login --url https://glint.example.com:9090 --key glint_... --profile prod"
    )]
    Login,
    /// Create, list and revoke API keys (admin).
    #[command(
        subcommand,
        after_help = "Examples:\n  glint keys create ci --role deploy\n  glint keys list\n  glint keys revoke key_0123456789ab"
    )]
    Keys(KeysCommand),
    /// Print shell completions.
    #[command(after_help = "Example:\n  glint completions bash > /etc/bash_completion.d/glint")]
    Completions { shell: clap_complete::Shell },
    /// The PhotonIQ FaaS CLI's remote verbs.
    #[command(
        subcommand,
        after_help = "Examples:\n  glint remote deploy\n  glint remote execute hello --data '{}' --header 'content-type: application/json'\n  glint remote alias update hello latest --version v1 --weight 0.9 --version v2 --weight 0.1"
    )]
    Remote(RemoteCommand),
}

#[derive(clap::Args)]
struct LogArgs {
    /// Keep printing lines as they are written (Ctrl-C stops).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only lines newer than this: 30s, 10m, 2h, 1d, or epoch milliseconds (default: the
    /// last hour).
    #[arg(long)]
    since: Option<String>,
    /// Only lines older than this, in the same forms as --since.
    #[arg(long)]
    until: Option<String>,
    /// Only lines of this version (v3).
    #[arg(long = "version", value_name = "VERSION")]
    of_version: Option<String>,
    /// At most this many lines (the newest).
    #[arg(long, short = 'n')]
    lines: Option<usize>,
    /// Only lines at this level or above.
    #[arg(long)]
    level: Option<String>,
    /// Only the lines of one invocation (its x-glint-execution-id).
    #[arg(long)]
    execution_id: Option<String>,
}

impl From<LogArgs> for LogFilter {
    fn from(a: LogArgs) -> Self {
        LogFilter {
            follow: a.follow,
            since: a.since,
            until: a.until,
            version: a.of_version,
            lines: a.lines,
            level: a.level,
            execution_id: a.execution_id,
        }
    }
}

#[derive(clap::Args)]
struct CallArgs {
    /// A version (v3) or alias (canary) to call instead of `latest`.
    #[arg(long)]
    version: Option<String>,
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// Path beneath the function's route.
    #[arg(long, default_value = "/")]
    path: String,
    /// A header, 'name: value'. Repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body.
    #[arg(long, short = 'd', conflicts_with = "file")]
    data: Option<String>,
    /// Request body from a file.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Print the status line and headers too.
    #[arg(short = 'i', long = "include")]
    include: bool,
}

impl From<CallArgs> for Call {
    fn from(a: CallArgs) -> Self {
        Call {
            version: a.version,
            method: a.method,
            path: a.path,
            headers: a.headers,
            data: a.data,
            file: a.file,
            include: a.include,
        }
    }
}

#[derive(Subcommand)]
enum AliasCommand {
    /// List a function's aliases.
    List { name: String },
    /// Show one alias.
    Info { name: String, alias: String },
    /// Point an alias at versions with weights.
    #[command(
        after_help = "Examples:\n  glint alias set hello latest v2\n  glint alias set hello latest v1=0.9 v2=0.1"
    )]
    Set {
        name: String,
        alias: String,
        #[arg(required = true)]
        versions: Vec<String>,
    },
}

#[derive(Subcommand)]
enum EnvCommand {
    /// List the env vars set through the API.
    List { name: String },
    /// Set an env var (it overrides the manifest's [env]).
    #[command(
        after_help = "Examples:\n  glint env set hello GREETING Hi\n  glint env set hello GREETING=Hi"
    )]
    Set {
        name: String,
        /// KEY, followed by VALUE, or KEY=VALUE in one word.
        #[arg(value_name = "KEY")]
        var: String,
        value: Option<String>,
    },
    /// Unset an env var.
    Unset {
        name: String,
        #[arg(value_name = "KEY")]
        var: String,
    },
}

#[derive(Subcommand)]
enum KvCommand {
    /// List the KV stores with their key counts and sizes.
    Stores,
    /// Create a store (a deploy creates the stores its manifest lists).
    Create { store: String },
    /// Print a key's value (raw bytes).
    Get {
        store: String,
        #[arg(value_name = "KEY")]
        entry: String,
        /// Write the value to this file instead of stdout.
        #[arg(long, short = 'o')]
        output_file: Option<PathBuf>,
    },
    /// Set a key, to VALUE, to a file's bytes (--file), or to stdin (VALUE `-` or none).
    Set {
        store: String,
        #[arg(value_name = "KEY")]
        entry: String,
        value: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Delete a key.
    Delete {
        store: String,
        #[arg(value_name = "KEY")]
        entry: String,
    },
    /// List keys in order, a page at a time.
    List {
        store: String,
        #[arg(long)]
        prefix: Option<String>,
        /// Where the previous page ended (printed with it).
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Set a secret; the value is read from stdin, hidden when typed.
    Set { name: String },
    /// List the secrets' names (never their values).
    List,
    /// Delete a secret.
    Delete { name: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is shown once.
    Create {
        name: String,
        #[arg(long, default_value = "read")]
        role: String,
    },
    /// List the live keys (never the keys themselves).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// Deploy the function in PATH (default: this folder).
    Deploy {
        path: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Call a function.
    Execute {
        name: String,
        #[command(flatten)]
        call: CallArgs,
    },
    List,
    Info {
        name: String,
    },
    Download {
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long, short = 'o')]
        output_file: Option<PathBuf>,
    },
    Delete {
        name: String,
        #[arg(long, short)]
        force: bool,
    },
    /// `version list NAME`.
    #[command(subcommand)]
    Version(RemoteVersion),
    /// `alias list|info|update`.
    #[command(subcommand)]
    Alias(RemoteAlias),
    Logs {
        name: String,
        #[command(flatten)]
        filter: LogArgs,
    },
    Status {
        name: String,
    },
}

#[derive(Subcommand)]
enum RemoteVersion {
    List { name: String },
}

#[derive(Subcommand)]
enum RemoteAlias {
    List {
        name: String,
    },
    Info {
        name: String,
        alias: String,
    },
    /// Set an alias's versions: --version v1 --weight 0.9 --version v2 --weight 0.1.
    Update {
        name: String,
        alias: String,
        #[arg(long = "version", required = true)]
        versions: Vec<String>,
        #[arg(long = "weight")]
        weights: Vec<f64>,
    },
}

/// The command tree, where a subcommand without examples of its own shows its parent's,
/// so every `--help` ends with an example.
fn command() -> clap::Command {
    fn inherit(cmd: clap::Command, parent: Option<clap::builder::StyledStr>) -> clap::Command {
        let own = cmd.get_after_help().cloned();
        let examples = own.clone().or(parent);
        let cmd = match (&own, &examples) {
            (None, Some(e)) => cmd.after_help(e.clone()),
            _ => cmd,
        };
        cmd.mut_subcommands(|sub| inherit(sub, examples.clone()))
    }
    inherit(Cli::command(), None)
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

/// `90s`, `10m`, `12h`, `7d` as a duration, for clap.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a duration; write 90s, 10m, 12h or 7d"))
}

fn main() -> ExitCode {
    use clap::FromArgMatches;
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Like other command-line tools, end quietly when stdout's reader goes away
    // (`glint kv list cache | head`) instead of panicking in `println!`. Not for the
    // commands that run a node: there a client hanging up must not end the process.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve { .. } | Command::Run { .. }) {
        // SAFETY: called once, before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let format = cli.output;
    let (login_url, login_key, login_ca) = (cli.url.clone(), cli.key.clone(), cli.ca_cert.clone());
    let target = profiles::resolve(cli.url, cli.key, cli.ca_cert, cli.profile.as_deref());
    let connect = || -> Result<Client> {
        let target = target.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Client::new(&target.url, target.key.clone(), target.ca_cert.as_deref())
    };
    match cli.command {
        Command::Serve {
            data_dir,
            store,
            listen,
            admin_listen,
            max_instances,
            log_format,
            tls_cert,
            tls_key,
            compiler,
            secret_key_file,
            kv_max_value_bytes,
            kv_store_quota_mb,
            node_id,
            region,
            log_max_age,
            log_max_mb,
            log_prune_every,
            evict_idle_after,
            max_loaded_versions,
            max_connections,
            max_header_bytes,
            header_read_timeout,
            body_read_timeout,
            dns_servers,
        } => {
            init_tracing(log_format);
            let config = glint_node::NodeConfig {
                data_dir: data_dir.unwrap_or_else(profiles::data_dir),
                store: store.map(|url| *url),
                listen,
                admin_listen,
                admin_key: std::env::var("GLINT_ADMIN_KEY").ok(),
                max_instances,
                tls: tls_cert.zip(tls_key),
                compiler: compiler.into(),
                secret_key: std::env::var("GLINT_SECRET_KEY").ok(),
                secret_key_file,
                kv_limits: glint_store::KvLimits {
                    max_value_bytes: kv_max_value_bytes,
                    store_quota_bytes: kv_store_quota_mb * 1024 * 1024,
                    ..Default::default()
                },
                node_id: node_id.unwrap_or_else(glint_node::default_node_id),
                region,
                log_retention: glint_node::logs::Retention {
                    max_age: log_max_age,
                    max_bytes: log_max_mb * 1024 * 1024,
                    every: log_prune_every,
                },
                eviction: glint_node::node::Eviction {
                    idle_after: evict_idle_after,
                    max_loaded: max_loaded_versions,
                },
                edge: glint_node::listener::EdgeLimits {
                    max_connections,
                    max_header_bytes,
                    header_read_timeout,
                    body_read_timeout,
                    ..Default::default()
                },
                dns_servers,
            };
            glint_node::run(config, shutdown_signal()).await?;
        }
        Command::New { name, lang, dir } => {
            let dir = scaffold::new_project(&name, lang, dir.as_deref())?;
            println!("created {} ({})", dir.display(), lang.display_name());
            println!(
                "next:\n  cd {}\n  glint build\n  glint run --watch",
                dir.display()
            );
        }
        Command::Build { path } => {
            let project = project::Project::open(&path.unwrap_or_else(|| PathBuf::from(".")))?;
            let component = toolchain::build(&project)?;
            let size = std::fs::metadata(&component)?.len();
            println!("built {} ({})", component.display(), output::size(size));
        }
        Command::Run {
            path,
            watch,
            listen,
            admin_listen,
            compiler,
        } => {
            init_tracing_at("warn", LogFormat::Text);
            let options = dev::RunOptions {
                compiler: compiler.into(),
                path: path.unwrap_or_else(|| PathBuf::from(".")),
                listen,
                admin_listen,
                watch,
            };
            dev::run(options, shutdown_signal()).await?;
        }
        Command::Deploy {
            path,
            name,
            alias,
            no_alias,
            no_build,
        } => {
            let alias = (!no_alias).then_some(alias.as_str());
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            lifecycle::deploy(&connect()?, &path, name, alias, !no_build, format).await?
        }
        Command::List => lifecycle::list(&connect()?, format).await?,
        Command::Info { name } => lifecycle::info(&connect()?, &name, format).await?,
        Command::Delete { name, force } => lifecycle::delete(&connect()?, &name, force).await?,
        Command::Versions { name } => lifecycle::versions(&connect()?, &name, format).await?,
        Command::Alias(AliasCommand::List { name }) => {
            lifecycle::alias_list(&connect()?, &name, format).await?
        }
        Command::Alias(AliasCommand::Info { name, alias }) => {
            lifecycle::alias_info(&connect()?, &name, &alias, format).await?
        }
        Command::Alias(AliasCommand::Set {
            name,
            alias,
            versions,
        }) => {
            let weights = lifecycle::parse_weights(&versions)?;
            lifecycle::alias_set(&connect()?, &name, &alias, weights).await?
        }
        Command::Rollback { name, alias } => {
            lifecycle::rollback(&connect()?, &name, &alias).await?
        }
        Command::Download {
            name,
            version,
            output_file,
        } => lifecycle::download(&connect()?, &name, version, output_file).await?,
        Command::Env(EnvCommand::List { name }) => {
            lifecycle::env_list(&connect()?, &name, format).await?
        }
        Command::Env(EnvCommand::Set { name, var, value }) => {
            let (var, value) = match (value, var.split_once('=')) {
                (Some(value), _) => (var, value),
                (None, Some((k, v))) => (k.to_string(), v.to_string()),
                (None, None) => anyhow::bail!(
                    "no value for {var}: write `glint env set {name} {var} VALUE` or `glint env set {name} {var}=VALUE`"
                ),
            };
            lifecycle::env_set(&connect()?, &name, &var, &value).await?
        }
        Command::Env(EnvCommand::Unset { name, var }) => {
            lifecycle::env_unset(&connect()?, &name, &var).await?
        }
        Command::Kv(cmd) => {
            let client = connect()?;
            match cmd {
                KvCommand::Stores => kv::stores(&client, format).await?,
                KvCommand::Create { store } => kv::create(&client, &store).await?,
                KvCommand::Get {
                    store,
                    entry,
                    output_file,
                } => kv::get(&client, &store, &entry, output_file).await?,
                KvCommand::Set {
                    store,
                    entry,
                    value,
                    file,
                } => kv::set(&client, &store, &entry, kv::read_value(value, file)?).await?,
                KvCommand::Delete { store, entry } => kv::delete(&client, &store, &entry).await?,
                KvCommand::List {
                    store,
                    prefix,
                    cursor,
                    limit,
                } => {
                    let opts = kv::ListOptions {
                        prefix,
                        cursor,
                        limit,
                    };
                    kv::list(&client, &store, opts, format).await?
                }
            }
        }
        Command::Secret(cmd) => {
            let client = connect()?;
            match cmd {
                SecretCommand::Set { name } => secret::set(&client, &name).await?,
                SecretCommand::List => secret::list(&client, format).await?,
                SecretCommand::Delete { name } => secret::delete(&client, &name).await?,
            }
        }
        Command::Logs { name, filter } => {
            lifecycle::logs(&connect()?, &name, &filter.into(), format).await?
        }
        Command::Status { name } => lifecycle::status(&connect()?, &name, format).await?,
        Command::Metrics {
            name,
            period,
            since,
        } => lifecycle::metrics(&connect()?, name.as_deref(), period, since, format).await?,
        Command::Execute { name, call } => {
            return lifecycle::execute(&connect()?, &name, call.into()).await;
        }
        Command::Login => {
            // Only what was given now: a login must not copy another profile's key.
            let target = profiles::Profile {
                url: login_url.unwrap_or_else(|| profiles::DEFAULT_API_URL.to_string()),
                key: login_key,
                ca_cert: login_ca,
            };
            let name = cli.profile.unwrap_or_else(|| "default".to_string());
            let client = Client::new(&target.url, target.key.clone(), target.ca_cert.as_deref())?;
            lifecycle::login(&client, &name, target).await?
        }
        Command::Keys(KeysCommand::Create { name, role }) => {
            lifecycle::keys_create(&connect()?, &name, &role, format).await?
        }
        Command::Keys(KeysCommand::List) => lifecycle::keys_list(&connect()?, format).await?,
        Command::Keys(KeysCommand::Revoke { id }) => {
            lifecycle::keys_revoke(&connect()?, &id).await?
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "glint", &mut std::io::stdout());
        }
        Command::Remote(remote) => return dispatch_remote(&connect()?, remote, format).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The PhotonIQ verbs, mapped onto Glint's commands.
async fn dispatch_remote(
    client: &Client,
    remote: RemoteCommand,
    format: Format,
) -> Result<ExitCode> {
    match remote {
        RemoteCommand::Deploy { path, name } => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            lifecycle::deploy(client, &path, name, Some("latest"), true, format).await?
        }
        RemoteCommand::Execute { name, call } => {
            let mut call: Call = call.into();
            if call.data.is_some() || call.file.is_some() {
                call.method = "POST".into();
            }
            return lifecycle::execute(client, &name, call).await;
        }
        RemoteCommand::List => lifecycle::list(client, format).await?,
        RemoteCommand::Info { name } => lifecycle::info(client, &name, format).await?,
        RemoteCommand::Download {
            name,
            version,
            output_file,
        } => lifecycle::download(client, &name, version, output_file).await?,
        RemoteCommand::Delete { name, force } => lifecycle::delete(client, &name, force).await?,
        RemoteCommand::Version(RemoteVersion::List { name }) => {
            lifecycle::versions(client, &name, format).await?
        }
        RemoteCommand::Alias(RemoteAlias::List { name }) => {
            lifecycle::alias_list(client, &name, format).await?
        }
        RemoteCommand::Alias(RemoteAlias::Info { name, alias }) => {
            lifecycle::alias_info(client, &name, &alias, format).await?
        }
        RemoteCommand::Alias(RemoteAlias::Update {
            name,
            alias,
            versions,
            weights,
        }) => {
            if !weights.is_empty() && weights.len() != versions.len() {
                anyhow::bail!("give one --weight per --version, or none for an even split");
            }
            let pairs: Vec<String> = versions
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{v}={}", weights.get(i).copied().unwrap_or(1.0)))
                .collect();
            lifecycle::alias_set(client, &name, &alias, lifecycle::parse_weights(&pairs)?).await?
        }
        RemoteCommand::Logs { name, filter } => {
            lifecycle::logs(client, &name, &filter.into(), format).await?
        }
        RemoteCommand::Status { name } => lifecycle::status(client, &name, format).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    init_tracing_at("info,wasmtime=warn,cranelift=warn", format);
}

fn init_tracing_at(default: &str, format: LogFormat) {
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
fn shutdown_signal() -> impl Future<Output = ()> {
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

/// Asks on a terminal; off a terminal there is no one to ask, so the answer is yes.
pub fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::command().debug_assert();
    }

    #[test]
    fn every_command_shows_an_example() {
        fn check(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(help.contains("Example"), "`{path} --help` has no example");
                check(sub, &path);
            }
        }
        check(&super::command(), "glint");
    }
}
