//! `glint`: the command line for Glint. It parses arguments and calls the node library
//! (`glint serve`) or the admin API (everything else); the work happens there.

mod client;
mod output;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use reqwest::Method;
use reqwest::multipart::{Form, Part};

use client::Client;

const DEFAULT_API_URL: &str = "http://127.0.0.1:9090";

#[derive(Parser)]
#[command(name = "glint", version, about = "Glint: WebAssembly functions at the edge", long_about = None)]
struct Cli {
    /// Admin API of the node to talk to.
    #[arg(long, global = true, env = "GLINT_API_URL", default_value = DEFAULT_API_URL)]
    url: String,
    /// API key. Defaults to the local node's admin key file, if there is one.
    #[arg(long, global = true, env = "GLINT_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Extra CA certificate (PEM) to trust, for a node with a self-signed certificate.
    #[arg(long, global = true, env = "GLINT_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Output format for listings.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Table,
    Json,
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
    },
    /// Deploy a function folder (with glint.toml) or a .wasm component.
    #[command(
        after_help = "Examples:\n  glint deploy examples/hello\n  glint deploy app.wasm --name app"
    )]
    Deploy {
        path: PathBuf,
        /// Function name; defaults to glint.toml's `name`, else the folder or file name.
        #[arg(long)]
        name: Option<String>,
        /// Alias to point at the new version.
        #[arg(long, default_value = "latest", conflicts_with = "no_alias")]
        alias: String,
        /// Upload the version without moving any alias.
        #[arg(long)]
        no_alias: bool,
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
    /// Call a function and print its response.
    #[command(
        after_help = "Examples:\n  glint execute hello\n  glint execute hello --method POST --data '{\"a\":1}' -H 'content-type: application/json' -i"
    )]
    Execute {
        name: String,
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
    },
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("dev", "glint", "glint")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".glint-data"))
}

/// With no key given, a local user talking to a local node uses the node's admin key file.
fn resolve_key(key: Option<String>) -> Option<String> {
    key.filter(|k| !k.is_empty()).or_else(|| {
        let dir = std::env::var_os("GLINT_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir);
        std::fs::read_to_string(dir.join("admin-key"))
            .ok()
            .map(|k| k.trim().to_string())
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    if let Command::Serve {
        data_dir,
        listen,
        admin_listen,
        max_instances,
        log_format,
        tls_cert,
        tls_key,
    } = cli.command
    {
        init_tracing(log_format);
        let config = glint_node::NodeConfig {
            data_dir: data_dir.unwrap_or_else(default_data_dir),
            listen,
            admin_listen,
            admin_key: std::env::var("GLINT_ADMIN_KEY").ok(),
            max_instances,
            tls: tls_cert.zip(tls_key),
        };
        glint_node::run(config, shutdown_signal()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::new(&cli.url, resolve_key(cli.key), cli.ca_cert.as_deref())?;
    let format = cli.output;
    match cli.command {
        Command::Serve { .. } => unreachable!("handled above"),
        Command::Deploy {
            path,
            name,
            alias,
            no_alias,
        } => deploy(&client, &path, name, alias, no_alias, format).await?,
        Command::List => output::functions(&client.get("/api/v1/functions").await?, format),
        Command::Info { name } => output::info(
            &client.get(&format!("/api/v1/functions/{name}")).await?,
            format,
        ),
        Command::Delete { name, force } => {
            if !force && !confirm(&format!("Delete function '{name}' and all its versions?"))? {
                bail!("not deleted; pass --force to skip the question");
            }
            client
                .json(client.request(Method::DELETE, &format!("/api/v1/functions/{name}")))
                .await?;
            println!("deleted function '{name}'");
        }
        Command::Execute {
            name,
            version,
            method,
            path,
            headers,
            data,
            file,
            include,
        } => {
            return execute(
                &client, &name, version, &method, &path, &headers, data, file, include,
            )
            .await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    use std::io::IsTerminal;
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn confirm(question: &str) -> Result<bool> {
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

/// What a deploy uploads: the function's name, manifest text and component bytes.
fn read_deployable(path: &Path, name: Option<String>) -> Result<(String, String, Vec<u8>)> {
    if path.is_dir() {
        let manifest_path = path.join("glint.toml");
        let manifest = std::fs::read_to_string(&manifest_path).with_context(|| {
            format!(
                "{} has no glint.toml; a function folder needs one (see examples/hello)",
                path.display()
            )
        })?;
        let parsed = glint_runtime::Manifest::parse(&manifest)
            .map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
        let name = name
            .or(parsed.name.clone())
            .or_else(|| {
                path.canonicalize()
                    .ok()?
                    .file_name()?
                    .to_str()
                    .map(str::to_string)
            })
            .context("cannot tell the function's name; pass --name")?;
        let Some(component) = &parsed.build.component else {
            bail!(
                "{}: `[build] component` is not set; set it to the .wasm your build produces",
                manifest_path.display()
            );
        };
        let component_path = path.join(component);
        let bytes = std::fs::read(&component_path).with_context(|| {
            let hint = parsed
                .build
                .command
                .as_deref()
                .map(|c| format!("; build it first: (cd {} && {c})", path.display()))
                .unwrap_or_default();
            format!(
                "cannot read the component {}{hint}",
                component_path.display()
            )
        })?;
        return Ok((name, manifest, bytes));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = name
        .or_else(|| path.file_stem()?.to_str().map(str::to_string))
        .context("cannot tell the function's name; pass --name")?;
    Ok((name, String::new(), bytes))
}

async fn deploy(
    client: &Client,
    path: &Path,
    name: Option<String>,
    alias: String,
    no_alias: bool,
    format: Format,
) -> Result<()> {
    let (name, manifest, bytes) = read_deployable(path, name)?;
    let name: glint_store::FunctionName = name.parse()?;
    let size = bytes.len();
    let form = Form::new().text("manifest", manifest).part(
        "component",
        Part::bytes(bytes)
            .file_name(format!("{name}.wasm"))
            .mime_str("application/wasm")?,
    );
    let query = if no_alias {
        "no_alias=true".to_string()
    } else {
        format!("alias={alias}")
    };
    let req = client
        .request(
            Method::POST,
            &format!("/api/v1/functions/{name}/versions?{query}"),
        )
        .multipart(form);
    eprintln!("deploying {name} ({:.1} KiB)...", size as f64 / 1024.0);
    let body = client.json(req).await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "deployed {name} {}",
        body["version"].as_str().unwrap_or("?")
    );
    if let Some(a) = body["alias"].as_str() {
        println!("  alias {a} -> {}", body["version"].as_str().unwrap_or("?"));
    }
    println!("  url: {}", body["function_url"].as_str().unwrap_or("?"));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    client: &Client,
    name: &str,
    version: Option<String>,
    method: &str,
    path: &str,
    headers: &[String],
    data: Option<String>,
    file: Option<PathBuf>,
    include: bool,
) -> Result<ExitCode> {
    let node = client.get("/api/v1/node").await?;
    let data_url = node["data_plane_url"]
        .as_str()
        .context("the node did not report its data plane URL")?;
    let (method, url) = match version {
        Some(v) => (
            Method::POST,
            format!("{data_url}/api/faas/v1/execute/{name}/{v}"),
        ),
        None => {
            let info = client.get(&format!("/api/v1/functions/{name}")).await?;
            let route = info["route"].as_str().unwrap_or_default();
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .with_context(|| format!("{method:?} is not an HTTP method"))?;
            (
                method,
                format!("{data_url}{route}{}", if path == "/" { "" } else { &path }),
            )
        }
    };
    let mut req = client.http.request(method, &url);
    for h in headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} must look like 'name: value'"))?;
        req = req.header(k.trim(), v.trim());
    }
    if let Some(d) = data {
        req = req.body(d);
    } else if let Some(f) = file {
        req = req.body(std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach the data plane at {url}"))?;
    let status = resp.status();
    if include {
        println!("{:?} {}", resp.version(), status);
        for (k, v) in resp.headers() {
            println!("{k}: {}", v.to_str().unwrap_or("<binary>"));
        }
        println!();
    }
    let body = resp.bytes().await?;
    use std::io::Write;
    std::io::stdout().write_all(&body)?;
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        if !include {
            eprintln!("\nerror: the function answered HTTP {}", status.as_u16());
        }
        Ok(ExitCode::FAILURE)
    }
}
