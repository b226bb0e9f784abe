//! The commands that work through the admin API: deploy, inspect, route, call, and
//! manage keys. Each one is a request or two and a printout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use glint_store::FunctionName;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::Format;
use crate::client::Client;
use crate::output;
use crate::project::Project;

fn function(name: &str) -> Result<FunctionName> {
    Ok(name.parse()?)
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Prints an answer as JSON, or through `table` for people.
pub(crate) fn show(format: Format, body: &Value, table: impl FnOnce(&Value)) {
    match format {
        Format::Json => print_json(body),
        Format::Table => table(body),
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
            crate::toolchain::build(&project)?
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
    let query = match alias {
        Some(a) => format!("alias={a}"),
        None => "no_alias=true".to_string(),
    };
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
    format: Format,
) -> Result<()> {
    let (path, name_arg) = (path.to_path_buf(), name);
    let (name, manifest, bytes) =
        tokio::task::spawn_blocking(move || read_deployable(&path, name_arg, build)).await??;
    let name = function(&name)?;
    let body = upload(client, &name, manifest, bytes, alias).await?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    let version = body["version"].as_str().unwrap_or("?");
    println!("deployed {name} {version}");
    if let Some(a) = body["alias"].as_str() {
        println!("  alias {a} -> {version}");
    }
    println!("  url: {}", body["function_url"].as_str().unwrap_or("?"));
    Ok(())
}

pub async fn list(client: &Client, format: Format) -> Result<()> {
    output::functions(&client.get("/api/v1/functions").await?, format);
    Ok(())
}

pub async fn info(client: &Client, name: &str, format: Format) -> Result<()> {
    let name = function(name)?;
    output::info(
        &client.get(&format!("/api/v1/functions/{name}")).await?,
        format,
    );
    Ok(())
}

pub async fn delete(client: &Client, name: &str, force: bool) -> Result<()> {
    let name = function(name)?;
    if !force && !crate::confirm(&format!("Delete function '{name}' and all its versions?"))? {
        bail!("not deleted; pass --force to skip the question");
    }
    client
        .json(client.request(Method::DELETE, &format!("/api/v1/functions/{name}")))
        .await?;
    println!("deleted function '{name}'");
    Ok(())
}

pub async fn versions(client: &Client, name: &str, format: Format) -> Result<()> {
    let name = function(name)?;
    let body = client
        .get(&format!("/api/v1/functions/{name}/versions"))
        .await?;
    show(format, &body, |body| output::versions(&body["versions"]));
    Ok(())
}

pub async fn alias_list(client: &Client, name: &str, format: Format) -> Result<()> {
    let name = function(name)?;
    let body = client
        .get(&format!("/api/v1/functions/{name}/aliases"))
        .await?;
    show(format, &body, |body| output::aliases(&body["aliases"]));
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
    let name = function(name)?;
    let found = fetch_alias(client, &name, alias).await?;
    show(format, &found, |found| output::aliases(&json!([found])));
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
    let name = function(name)?;
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
    let name = function(name)?;
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
    let name = function(name)?;
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

pub async fn env_list(client: &Client, name: &str, format: Format) -> Result<()> {
    let name = function(name)?;
    let body = client.get(&format!("/api/v1/functions/{name}/env")).await?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = body["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                e["name"].as_str().unwrap_or_default().to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!(
            "no env vars set through the API (the manifest's [env] still applies); set one with `glint env set {name} KEY VALUE`"
        );
    } else {
        output::table(&["NAME", "VALUE"], &rows);
    }
    Ok(())
}

pub async fn env_set(client: &Client, name: &str, key: &str, value: &str) -> Result<()> {
    let name = function(name)?;
    let req = client
        .request(Method::PUT, &format!("/api/v1/functions/{name}/env/{key}"))
        .json(&json!({ "value": value }));
    client.json(req).await?;
    println!("set {key} on {name}");
    Ok(())
}

pub async fn env_unset(client: &Client, name: &str, key: &str) -> Result<()> {
    let name = function(name)?;
    client
        .json(client.request(
            Method::DELETE,
            &format!("/api/v1/functions/{name}/env/{key}"),
        ))
        .await?;
    println!("unset {key} on {name}");
    Ok(())
}

pub struct LogFilter {
    pub follow: bool,
    pub since: Option<String>,
    pub until: Option<String>,
    pub version: Option<String>,
    pub lines: Option<usize>,
    pub level: Option<String>,
    pub execution_id: Option<String>,
}

pub async fn logs(client: &Client, name: &str, filter: &LogFilter, format: Format) -> Result<()> {
    let name = function(name)?;
    let mut common = Vec::new();
    for (key, value) in [
        ("level", &filter.level),
        ("execution_id", &filter.execution_id),
        ("version", &filter.version),
    ] {
        if let Some(v) = value {
            common.push((key, v.clone()));
        }
    }
    // Following starts listening before it reads the history, so no line falls between.
    let live = if filter.follow {
        let mut query = common.clone();
        query.push(("function", name.to_string()));
        let req = client
            .request(Method::GET, "/api/v1/logs/stream")
            .query(&query)
            .header("accept", "text/event-stream");
        Some(client.send(req).await?)
    } else {
        None
    };
    let default_lines = if filter.follow { 10 } else { 100 };
    let mut query = common;
    query.push(("lines", filter.lines.unwrap_or(default_lines).to_string()));
    for (key, value) in [("since", &filter.since), ("end", &filter.until)] {
        if let Some(v) = value {
            query.push((key, v.clone()));
        }
    }
    let req = client
        .request(Method::GET, &format!("/api/v1/functions/{name}/logs"))
        .query(&query);
    let body = client.json(req).await?;
    let history: Vec<Value> = body["lines"].as_array().cloned().unwrap_or_default();
    let print = |line: &Value| match format {
        Format::Json => println!("{line}"),
        Format::Table => output::log_line(line),
    };
    if live.is_none() && format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    for line in &history {
        print(line);
    }
    let Some(live) = live else { return Ok(()) };
    let mut events = crate::client::sse_events(live);
    while let Some(event) = events.next().await {
        let event = event?;
        if event.name.as_deref() == Some("skipped") {
            eprintln!("({} lines skipped: this terminal fell behind)", event.data);
            continue;
        }
        if event.name.as_deref() == Some("revoked") {
            anyhow::bail!(
                "{}; sign in again with a live key (`glint login`)",
                event.data
            );
        }
        let Ok(line) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        // A line the history already showed.
        if history.contains(&line) {
            continue;
        }
        print(&line);
    }
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Period {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

pub async fn metrics(
    client: &Client,
    name: Option<&str>,
    period: Period,
    since: Option<String>,
    format: Format,
) -> Result<()> {
    let period_name = match period {
        Period::Minute => "minute",
        Period::Hour => "hour",
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    };
    let mut query = vec![("period", period_name.to_string())];
    if let Some(n) = name {
        query.push(("function", function(n)?.to_string()));
    }
    if let Some(s) = since {
        query.push(("start", s));
    }
    let body = client
        .json(client.request(Method::GET, "/api/v1/usage").query(&query))
        .await?;
    show(format, &body, output::usage);
    Ok(())
}

pub async fn status(client: &Client, name: &str, format: Format) -> Result<()> {
    let name = function(name)?;
    let body = client
        .get(&format!("/api/v1/functions/{name}/status"))
        .await?;
    show(format, &body, output::status);
    Ok(())
}

pub async fn keys_create(client: &Client, name: &str, role: &str, format: Format) -> Result<()> {
    let req = client
        .request(Method::POST, "/api/v1/keys")
        .json(&json!({ "name": name, "role": role }));
    let body = client.json(req).await?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    println!(
        "created {} key '{name}' ({})",
        role,
        body["id"].as_str().unwrap_or("?")
    );
    println!("  {}", body["key"].as_str().unwrap_or("?"));
    println!("the key is shown only this once; store it now");
    Ok(())
}

pub async fn keys_list(client: &Client, format: Format) -> Result<()> {
    let body = client.get("/api/v1/keys").await?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = body["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            ["id", "name", "role", "prefix"]
                .iter()
                .map(|f| k[*f].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    output::table(&["ID", "NAME", "ROLE", "PREFIX"], &rows);
    Ok(())
}

pub async fn keys_revoke(client: &Client, id: &str) -> Result<()> {
    client
        .json(client.request(Method::DELETE, &format!("/api/v1/keys/{id}")))
        .await?;
    println!("revoked {id}");
    Ok(())
}

/// How `glint execute` builds its request.
pub struct Call {
    pub version: Option<String>,
    pub method: String,
    pub path: String,
    pub headers: Vec<String>,
    pub data: Option<String>,
    pub file: Option<PathBuf>,
    pub include: bool,
}

pub async fn execute(client: &Client, name: &str, call: Call) -> Result<ExitCode> {
    let name = function(name)?;
    let node = client.get("/api/v1/node").await?;
    let data_url = node["data_plane_url"]
        .as_str()
        .context("the node did not report its data plane URL")?;
    let (method, url) = match call.version {
        Some(v) => (
            Method::POST,
            format!("{data_url}/api/faas/v1/execute/{name}/{v}"),
        ),
        None => {
            let info = client.get(&format!("/api/v1/functions/{name}")).await?;
            let route = info["route"].as_str().unwrap_or_default();
            let path = if call.path.starts_with('/') {
                call.path.clone()
            } else {
                format!("/{}", call.path)
            };
            let method = Method::from_bytes(call.method.to_ascii_uppercase().as_bytes())
                .with_context(|| format!("{:?} is not an HTTP method", call.method))?;
            (
                method,
                format!("{data_url}{route}{}", if path == "/" { "" } else { &path }),
            )
        }
    };
    let mut req = client.http.request(method, &url);
    for h in &call.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} must look like 'name: value'"))?;
        req = req.header(k.trim(), v.trim());
    }
    if let Some(d) = call.data {
        req = req.body(d);
    } else if let Some(f) = call.file {
        req = req.body(std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach the data plane at {url}"))?;
    let status = resp.status();
    if call.include {
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
        return Ok(ExitCode::SUCCESS);
    }
    if !call.include {
        eprintln!("\nerror: the function answered HTTP {}", status.as_u16());
    }
    Ok(ExitCode::FAILURE)
}

/// Checks the node and key, then saves them as a profile.
pub async fn login(
    client: &Client,
    profile_name: &str,
    profile: crate::profiles::Profile,
) -> Result<()> {
    if profile.key.is_none() {
        bail!("give the API key to save: glint login --url URL --key KEY (or GLINT_API_KEY)");
    }
    let node = client
        .get("/api/v1/functions")
        .await
        .context("the node refused the login")?;
    let count = node["functions"].as_array().map(Vec::len).unwrap_or(0);
    let mut profiles = crate::profiles::Profiles::load()?;
    profiles
        .profiles
        .insert(profile_name.to_string(), profile.clone());
    if profiles.current.is_none() || profile_name == "default" {
        profiles.current = Some(profile_name.to_string());
    }
    let path = profiles.save()?;
    println!(
        "logged in to {} as profile '{profile_name}' ({count} functions); saved to {}",
        profile.url,
        path.display()
    );
    Ok(())
}
