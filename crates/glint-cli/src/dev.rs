//! The developer loop: `glint new` makes a project, `glint build` builds it, and
//! `glint run` builds, starts a node on the project's own data (`.glint/`), deploys,
//! prints the URL and streams the function's log lines; with `--watch`, it rebuilds and
//! redeploys on every saved change.

use futures_util::StreamExt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use glint_store::FunctionName;
use serde_json::Value;

use crate::client::Client;
use crate::project::{self, Project};
use crate::serve::{self, CompilerArg, LogFormat};
use crate::{lifecycle, output, scaffold, toolchain};

// Flattened into `glint`'s own commands, so no doc comment here: it would become
// `glint`'s about text.
#[derive(Subcommand)]
pub enum DevCommand {
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
}

pub async fn run(command: DevCommand) -> Result<()> {
    match command {
        DevCommand::New { name, lang, dir } => {
            let dir = scaffold::new_project(&name, lang, dir.as_deref())?;
            println!("created {} ({})", dir.display(), lang.display_name());
            println!(
                "next:\n  cd {}\n  glint build\n  glint run --watch",
                dir.display()
            );
        }
        DevCommand::Build { path } => {
            let project = Project::open(&path.unwrap_or_else(|| PathBuf::from(".")))?;
            let component = toolchain::build(&project)?;
            let size = std::fs::metadata(&component)?.len();
            println!("built {} ({})", component.display(), output::size(size));
        }
        DevCommand::Run {
            path,
            watch,
            listen,
            admin_listen,
            compiler,
        } => {
            serve::init_tracing_at("warn", LogFormat::Text);
            let options = RunOptions {
                compiler: compiler.into(),
                path: path.unwrap_or_else(|| PathBuf::from(".")),
                listen,
                admin_listen,
                watch,
            };
            run_locally(options, serve::shutdown_signal()).await?;
        }
    }
    Ok(())
}

/// Folders whose changes are the build's own output, not the user's edits.
const IGNORED: &[&str] = &[
    "dist",
    "target",
    ".glint",
    "node_modules",
    "__pycache__",
    ".git",
];

struct RunOptions {
    compiler: glint_runtime::Compiler,
    path: PathBuf,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    watch: bool,
}

async fn run_locally(options: RunOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let project = Project::open(&options.path)?;
    let name: FunctionName = project.name.parse()?;
    let built = build(&options.path).await?;

    let data_dir = project.dir.join(".glint/data");
    let server = glint_node::Server::start(glint_node::NodeConfig {
        data_dir: data_dir.clone(),
        store: None,
        listen: options.listen,
        admin_listen: options.admin_listen,
        admin_key: None,
        max_instances: 100,
        tls: None,
        compiler: options.compiler,
        secret_key: None,
        secret_key_file: None,
        kv_limits: glint_store::KvLimits::default(),
        node_id: glint_node::default_node_id(),
        region: "local".to_string(),
        base_domain: None,
        log_retention: glint_node::logs::Retention::default(),
        eviction: glint_node::node::Eviction {
            idle_after: std::time::Duration::ZERO,
            max_loaded: usize::MAX,
        },
        edge: glint_node::listener::EdgeLimits::default(),
        dns_servers: Vec::new(),
        data_plane_threads: Default::default(),
    })
    .await?;
    let client = Client::new(&server.admin_url, read_key(&data_dir), None)?;
    let body = deploy(&client, &name, built).await?;
    // Following starts before the URL is printed, so the first request's lines are
    // never missed.
    let live = client
        .send(
            client
                .request(reqwest::Method::GET, "/api/v1/logs/stream")
                .query(&[("function", name.as_str())]),
        )
        .await?;
    println!(
        "serving {name} {} at {}",
        body["version"].as_str().unwrap_or("?"),
        body["function_url"].as_str().unwrap_or("?")
    );
    println!(
        "admin API {} (key in {})",
        server.admin_url,
        data_dir.join("admin-key").display()
    );
    if options.watch {
        println!(
            "watching {} for changes; Ctrl-C stops",
            project.dir.display()
        );
    } else {
        println!("Ctrl-C stops");
    }

    let logs = tokio::spawn(print_logs(live));
    let result = if options.watch {
        tokio::select! {
            r = watch(&project.dir, &options.path, &client, &name) => r,
            _ = shutdown => Ok(()),
        }
    } else {
        shutdown.await;
        Ok(())
    };
    logs.abort();
    server.stop().await?;
    result
}

fn read_key(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("admin-key"))
        .ok()
        .map(|k| k.trim().to_string())
}

/// Builds on a blocking thread; returns the manifest text and component bytes.
async fn build(path: &Path) -> Result<(String, Vec<u8>)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let project = Project::open(&path)?;
        let component = toolchain::build(&project)?;
        let bytes = std::fs::read(&component)
            .with_context(|| format!("cannot read {}", component.display()))?;
        println!(
            "built {} ({})",
            component.display(),
            output::size(bytes.len() as u64)
        );
        Ok((project.manifest_text, bytes))
    })
    .await?
}

async fn deploy(
    client: &Client,
    name: &FunctionName,
    (manifest, bytes): (String, Vec<u8>),
) -> Result<Value> {
    lifecycle::upload(client, name, manifest, bytes, Some("latest"), None).await
}

/// Waits for saved changes, then rebuilds and redeploys; a failed build is reported and
/// the previous version keeps serving.
async fn watch(dir: &Path, path: &Path, client: &Client, name: &FunctionName) -> Result<()> {
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let root = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let relevant =
                event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove();
            let ours = event.paths.iter().any(|p| {
                p.strip_prefix(&root)
                    .map(|rel| {
                        !rel.components()
                            .any(|c| IGNORED.contains(&c.as_os_str().to_string_lossy().as_ref()))
                    })
                    .unwrap_or(false)
            });
            if relevant && ours {
                let _ = tx.send(());
            }
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    while rx.recv().await.is_some() {
        // Editors save in bursts; settle first.
        tokio::time::sleep(Duration::from_millis(150)).await;
        while rx.try_recv().is_ok() {}
        let started = Instant::now();
        println!("change detected; rebuilding");
        match build(path).await {
            Ok(built) => {
                let built_at = Instant::now();
                match deploy(client, name, built).await {
                    Ok(body) => println!(
                        "redeployed {name} {} (build {:.1}s, deploy {:.2}s)",
                        body["version"].as_str().unwrap_or("?"),
                        (built_at - started).as_secs_f64(),
                        built_at.elapsed().as_secs_f64()
                    ),
                    Err(e) => {
                        eprintln!("error: deploy failed: {e:#}; the previous version keeps serving")
                    }
                }
            }
            Err(e) => eprintln!("error: build failed: {e:#}; the previous version keeps serving"),
        }
    }
    Ok(())
}

/// Prints the function's log lines as they arrive over the live-follow stream.
async fn print_logs(live: reqwest::Response) {
    let mut events = crate::client::sse_events(live);
    while let Some(Ok(event)) = events.next().await {
        if let Ok(line) = serde_json::from_str::<serde_json::Value>(&event.data) {
            output::log_line(&line);
        }
    }
}
