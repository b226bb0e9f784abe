//! A function's life through the admin API: `glint deploy`, `list`, `info`, `delete`,
//! `versions`, `alias`, `rollback` and `download`. Each one is a request or two and a printout.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use futures_util::StreamExt;
use glint_store::FunctionName;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::client::{Client, Connect};
use crate::output::{self, Format};
use crate::project::Project;
use crate::toolchain;

// Flattened into `glint`'s own commands, so no doc comment here: it would become
// `glint`'s about text.
#[derive(Subcommand)]
pub enum FunctionCommand {
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
        /// Return once the version is stored, without waiting for every node to serve it.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for every node, in every region, to serve the new version.
        #[arg(long, visible_alias = "timeout", default_value = "60s", value_parser = humantime::parse_duration, conflicts_with = "no_wait")]
        wait_timeout: std::time::Duration,
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
}

#[derive(Subcommand)]
pub enum AliasCommand {
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

pub async fn run(command: FunctionCommand, connect: Connect<'_>, format: Format) -> Result<()> {
    match command {
        FunctionCommand::Deploy {
            path,
            name,
            alias,
            no_alias,
            no_build,
            no_wait,
            wait_timeout,
        } => {
            let alias = (!no_alias).then_some(alias.as_str());
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            let wait = (!no_wait).then_some(wait_timeout);
            deploy(&connect()?, &path, name, alias, !no_build, wait, format).await
        }
        FunctionCommand::List => list(&connect()?, format).await,
        FunctionCommand::Info { name } => info(&connect()?, &name, format).await,
        FunctionCommand::Delete { name, force } => delete(&connect()?, &name, force).await,
        FunctionCommand::Versions { name } => versions(&connect()?, &name, format).await,
        FunctionCommand::Alias(AliasCommand::List { name }) => {
            alias_list(&connect()?, &name, format).await
        }
        FunctionCommand::Alias(AliasCommand::Info { name, alias }) => {
            alias_info(&connect()?, &name, &alias, format).await
        }
        FunctionCommand::Alias(AliasCommand::Set {
            name,
            alias,
            versions,
        }) => {
            let weights = parse_weights(&versions)?;
            alias_set(&connect()?, &name, &alias, weights).await
        }
        FunctionCommand::Rollback { name, alias } => rollback(&connect()?, &name, &alias).await,
        FunctionCommand::Download {
            name,
            version,
            output_file,
        } => download(&connect()?, &name, version, output_file).await,
    }
}

/// What a deploy uploads: the function's name, manifest text and component bytes.
/// A folder is built first (unless `build` is false), so what is deployed is the source
/// as it is now.
fn read_deployable(
    path: &Path,
    name: Option<String>,
    build: bool,
) -> Result<(String, String, Vec<u8>)> {
    if path.is_dir() {
        let project = Project::open(path)?;
        let component = if build {
            toolchain::build(&project)?
        } else {
            project.component_path()?
        };
        let bytes = std::fs::read(&component).with_context(|| {
            format!(
                "cannot read the component {}; build it first: glint build {}",
                component.display(),
                path.display()
            )
        })?;
        let name = name.unwrap_or_else(|| project.name.clone());
        return Ok((name, project.manifest_text, bytes));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = name
        .or_else(|| path.file_stem()?.to_str().map(str::to_string))
        .context("cannot tell the function's name; pass --name")?;
    Ok((name, String::new(), bytes))
}

/// Uploads a version with a progress bar; returns the API's answer.
pub async fn upload(
    client: &Client,
    name: &FunctionName,
    manifest: String,
    bytes: Vec<u8>,
    alias: Option<&str>,
    wait: Option<std::time::Duration>,
) -> Result<Value> {
    let size = bytes.len() as u64;
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template("uploading {msg} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(name.to_string());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let progress = bar.clone();
    let stream = futures_util::stream::iter(chunks).inspect(move |c| {
        if let Ok(c) = c {
            progress.inc(c.len() as u64);
            if progress.position() >= size {
                // The node compiles before it answers; that can take seconds.
                progress.set_message(format!("{} (compiling on the node)", progress.message()));
            }
        }
    });
    let part = Part::stream_with_length(reqwest::Body::wrap_stream(stream), size)
        .file_name(format!("{name}.wasm"))
        .mime_str("application/wasm")?;
    let form = Form::new()
        .text("manifest", manifest)
        .part("component", part);
    let mut query = match alias {
        Some(a) => format!("alias={a}"),
        None => "no_alias=true".to_string(),
    };
    match wait {
        Some(limit) => query.push_str(&format!("&wait_seconds={}", limit.as_secs().max(1))),
        None => query.push_str("&no_wait=true"),
    }
    let req = client
        .request(
            Method::POST,
            &format!("/api/v1/functions/{name}/versions?{query}"),
        )
        .multipart(form);
    let result = client.json(req).await;
    bar.finish_and_clear();
    result
}

pub async fn deploy(
    client: &Client,
    path: &Path,
    name: Option<String>,
    alias: Option<&str>,
    build: bool,
    wait: Option<std::time::Duration>,
    format: Format,
) -> Result<()> {
    if path.is_dir() && crate::spin::is_spin_app(path) {
        if name.is_some() {
            anyhow::bail!(
                "--name does not apply to a Spin application: each component deploys as the function named by its id"
            );
        }
        return deploy_spin(client, path, alias, build, wait, format).await;
    }
    let (path, name_arg) = (path.to_path_buf(), name);
    let (name, manifest, bytes) =
        tokio::task::spawn_blocking(move || read_deployable(&path, name_arg, build)).await??;
    let name: FunctionName = name.parse()?;
    let body = upload(client, &name, manifest, bytes, alias, wait).await?;
    report_deploy(&name, &body, format)
}

/// Deploys each component of the Spin application in `dir` as a function.
async fn deploy_spin(
    client: &Client,
    dir: &Path,
    alias: Option<&str>,
    build: bool,
    wait: Option<std::time::Duration>,
    format: Format,
) -> Result<()> {
    let dir = dir.to_path_buf();
    let functions = tokio::task::spawn_blocking(move || -> Result<_> {
        let functions = crate::spin::read(&dir, &|k| std::env::var(k).ok())?;
        let mut out = Vec::new();
        for f in functions {
            if build && let Some((command, workdir)) = &f.build {
                crate::toolchain::run_shell(command, workdir)?;
            }
            let bytes = std::fs::read(&f.component).with_context(|| {
                format!(
                    "cannot read component `{}`'s source {}; build it first (its [component.{}.build] command)",
                    f.name,
                    f.component.display(),
                    f.name
                )
            })?;
            out.push((f.name, f.manifest, bytes));
        }
        Ok(out)
    })
    .await??;
    for (name, manifest, bytes) in functions {
        let name: FunctionName = name.parse().with_context(|| {
            format!("spin.toml: component id `{name}` is not a valid Glint function name")
        })?;
        let body = upload(client, &name, manifest, bytes, alias, wait).await?;
        report_deploy(&name, &body, format)?;
    }
    Ok(())
}

/// Prints what a deploy did, and fails when some node or region did not serve it in time.
fn report_deploy(name: &FunctionName, body: &Value, format: Format) -> Result<()> {
    let version = body["version"].as_str().unwrap_or("?");
    if format == Format::Json {
        output::print_json(body);
    } else {
        println!("deployed {name} {version}");
        if let Some(a) = body["alias"].as_str() {
            println!("  alias {a} -> {version}");
        }
        println!("  url: {}", body["function_url"].as_str().unwrap_or("?"));
        if let Some(ready) = body["rollout"]["ready"].as_array() {
            let each: Vec<String> = ready
                .iter()
                .map(|r| {
                    format!(
                        "{} {} ms",
                        r["node"].as_str().unwrap_or("?"),
                        r["after_ms"].as_i64().unwrap_or(0)
                    )
                })
                .collect();
            println!("  serving on {} node(s): {}", each.len(), each.join(", "));
        }
        // With nodes in more than one region, when each region first served it.
        if let Some(regions) = body["rollout"]["regions"].as_array()
            && regions.len() > 1
        {
            let each: Vec<String> = regions
                .iter()
                .map(|r| {
                    let region = r["region"].as_str().unwrap_or("?");
                    match r["after_ms"].as_i64() {
                        Some(ms) => format!("{region} {ms} ms"),
                        None => format!("{region} not yet"),
                    }
                })
                .collect();
            println!("  regions: {}", each.join(", "));
        }
    }
    let late: Vec<&str> = body["rollout"]["not_ready"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Regions where no node served it in time.
    let unserved: Vec<&str> = body["rollout"]["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["after_ms"].is_null())
        .filter_map(|r| r["region"].as_str())
        .collect();
    if !unserved.is_empty() {
        anyhow::bail!(
            "{name} {version} is deployed, but region(s) {} did not serve it in time (node(s) {} not ready); \
             they may still be compiling, or be cut off from the other regions: `glint regions` shows when each was last heard",
            unserved.join(", "),
            late.join(", ")
        );
    }
    if !late.is_empty() {
        anyhow::bail!(
            "{name} {version} is deployed, but node(s) {} did not serve it in time; they may still be compiling or cut off from the store (`glint nodes` lists the nodes)",
            late.join(", ")
        );
    }
    Ok(())
}

pub async fn list(client: &Client, format: Format) -> Result<()> {
    output::functions(&client.get("/api/v1/functions").await?, format);
    Ok(())
}

pub async fn info(client: &Client, name: &str, format: Format) -> Result<()> {
    let name: FunctionName = name.parse()?;
    output::info(
        &client.get(&format!("/api/v1/functions/{name}")).await?,
        format,
    );
    Ok(())
}

pub async fn delete(client: &Client, name: &str, force: bool) -> Result<()> {
    let name: FunctionName = name.parse()?;
    if !force && !confirm(&format!("Delete function '{name}' and all its versions?"))? {
        bail!("not deleted; pass --force to skip the question");
    }
    client
        .json(client.request(Method::DELETE, &format!("/api/v1/functions/{name}")))
        .await?;
    println!("deleted function '{name}'");
    Ok(())
}

pub async fn versions(client: &Client, name: &str, format: Format) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let body = client
        .get(&format!("/api/v1/functions/{name}/versions"))
        .await?;
    output::show(format, &body, |body| output::versions(&body["versions"]));
    Ok(())
}

pub async fn alias_list(client: &Client, name: &str, format: Format) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let body = client
        .get(&format!("/api/v1/functions/{name}/aliases"))
        .await?;
    output::show(format, &body, |body| output::aliases(&body["aliases"]));
    Ok(())
}

/// One alias of a function, as the API returns it.
async fn fetch_alias(client: &Client, name: &FunctionName, alias: &str) -> Result<Value> {
    let body = client
        .get(&format!("/api/v1/functions/{name}/aliases"))
        .await?;
    body["aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == alias)
        .cloned()
        .with_context(|| {
            format!(
                "function '{name}' has no alias '{alias}'; `glint alias list {name}` shows them"
            )
        })
}

/// The newest version an alias points to.
async fn newest_target(client: &Client, name: &FunctionName, alias: &str) -> Result<u64> {
    let found = fetch_alias(client, name, alias).await?;
    found["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["version"].as_u64())
        .max()
        .with_context(|| format!("alias '{alias}' of {name} points at no version"))
}

pub async fn alias_info(client: &Client, name: &str, alias: &str, format: Format) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let found = fetch_alias(client, &name, alias).await?;
    output::show(format, &found, |found| output::aliases(&json!([found])));
    Ok(())
}

/// Parses `v1=0.9 v2=0.1` (a lone `v2` means all traffic).
pub fn parse_weights(pairs: &[String]) -> Result<serde_json::Map<String, Value>> {
    let mut versions = serde_json::Map::new();
    for pair in pairs {
        let (version, weight) = match pair.split_once('=') {
            Some((v, w)) => (
                v,
                w.parse::<f64>().with_context(|| {
                    format!("weight in {pair:?} is not a number; write v1=0.9 v2=0.1")
                })?,
            ),
            None => (pair.as_str(), 1.0),
        };
        versions.insert(version.to_string(), json!(weight));
    }
    if versions.is_empty() {
        bail!("name at least one version, such as `v2` or `v1=0.9 v2=0.1`");
    }
    Ok(versions)
}

pub async fn alias_set(
    client: &Client,
    name: &str,
    alias: &str,
    versions: serde_json::Map<String, Value>,
) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let req = client
        .request(
            Method::PUT,
            &format!("/api/v1/functions/{name}/aliases/{alias}"),
        )
        .json(&json!({ "versions": versions }));
    let body = client.json(req).await?;
    println!(
        "alias {alias} of {name} -> {}",
        output::targets(&body["targets"])
    );
    Ok(())
}

/// Points the alias at the newest version older than the newest one it points to now.
pub async fn rollback(client: &Client, name: &str, alias: &str) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let newest = newest_target(client, &name, alias).await?;
    let versions = client
        .get(&format!("/api/v1/functions/{name}/versions"))
        .await?;
    let previous = versions["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v["version"]
                .as_str()?
                .trim_start_matches('v')
                .parse::<u64>()
                .ok()
        })
        .filter(|v| *v < newest)
        .max()
        .with_context(|| {
            format!("{alias} points at v{newest}, and {name} has no older version to roll back to")
        })?;
    let mut target = serde_json::Map::new();
    target.insert(format!("v{previous}"), json!(1.0));
    alias_set(client, name.as_str(), alias, target).await
}

pub async fn download(
    client: &Client,
    name: &str,
    version: Option<String>,
    out: Option<PathBuf>,
) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let version = match version {
        Some(v) => v,
        None => format!(
            "v{}",
            newest_target(client, &name, glint_store::LATEST_ALIAS).await?
        ),
    };
    let resp = client
        .send(client.request(
            Method::GET,
            &format!("/api/v1/functions/{name}/versions/{version}/wasm"),
        ))
        .await?;
    let bytes = resp.bytes().await?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{name}-{version}.wasm")));
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "saved {name} {version} to {} ({} bytes)",
        out.display(),
        bytes.len()
    );
    Ok(())
}

/// Asks on a terminal; off a terminal there is no one to ask, so the answer is yes.
pub(crate) fn confirm(question: &str) -> Result<bool> {
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
