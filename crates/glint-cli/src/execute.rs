//! `glint execute`: call a function on the node's data plane and print its response;
//! the exit code says whether the function answered 2xx.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use glint_store::FunctionName;
use reqwest::Method;

use crate::client::{Client, Connect};

/// Call a function and print its response.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  glint execute hello\n  glint execute hello -X POST --path /echo -d '{\"a\":1}' -H 'content-type: application/json' -i"
)]
pub struct ExecuteArgs {
    name: String,
    #[command(flatten)]
    call: Call,
}

// The request `glint execute` (and `glint remote execute`) sends. No doc comment: on a
// flattened struct it would replace the command's about text.
#[derive(clap::Args)]
pub struct Call {
    /// A version (v3) or alias (canary) to call instead of `latest`.
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// Path beneath the function's route.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// A header, 'name: value'. Repeatable.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long, short = 'd', conflicts_with = "file")]
    pub data: Option<String>,
    /// Request body from a file.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Print the status line and headers too.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
}

pub async fn run(args: ExecuteArgs, connect: Connect<'_>) -> Result<ExitCode> {
    send(&connect()?, &args.name, args.call).await
}

pub async fn send(client: &Client, name: &str, call: Call) -> Result<ExitCode> {
    let name: FunctionName = name.parse()?;
    let node = client.get("/api/v1/node").await?;
    let data_url = node["data_plane_url"]
        .as_str()
        .context("the node did not report its data plane URL")?;
    let info = client.get(&format!("/api/v1/functions/{name}")).await?;
    let unreachable = || {
        anyhow::anyhow!(
            "function '{name}' belongs to a tenant whose functions answer only on their own host names; \
             start the node with --base-domain to serve them"
        )
    };
    let (method, target) = match call.version {
        Some(v) => {
            // Each version's URL is the execute endpoint's with the version last; an
            // alias takes its place.
            let any = info["versions"][0]["url"]
                .as_str()
                .ok_or_else(unreachable)?;
            let (base, _) = any
                .rsplit_once('/')
                .context("the node answered a version URL without a path")?;
            (Method::POST, format!("{base}/{v}"))
        }
        None => {
            let base = info["url"].as_str().ok_or_else(unreachable)?;
            let path = if call.path.starts_with('/') {
                call.path.clone()
            } else {
                format!("/{}", call.path)
            };
            let method = Method::from_bytes(call.method.to_ascii_uppercase().as_bytes())
                .with_context(|| format!("{:?} is not an HTTP method", call.method))?;
            let path = if path == "/" && !base.ends_with('/') {
                ""
            } else {
                &path
            };
            (method, format!("{base}{path}"))
        }
    };
    // Sent to the node's own address with the function's host name, so no DNS name
    // needs to point at the node.
    let (url, host) = via_node(data_url, &target);
    let mut req = client.http.request(method, &url);
    if let Some(host) = host {
        req = req.header(reqwest::header::HOST, host);
    }
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

/// A URL's scheme, authority and the rest (path and query).
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let at = rest.find('/').unwrap_or(rest.len());
    Some((scheme, &rest[..at], &rest[at..]))
}

/// `target` sent to the node at `data_url`: the URL with the node's scheme and address,
/// and the target's own host (when it differs) for the `Host` header.
fn via_node(data_url: &str, target: &str) -> (String, Option<String>) {
    match (split_url(data_url), split_url(target)) {
        (Some((scheme, node, _)), Some((_, authority, path))) => (
            format!("{scheme}://{node}{path}"),
            (authority != node).then(|| authority.to_string()),
        ),
        _ => (target.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::via_node;

    #[test]
    fn a_function_host_goes_to_the_node_with_its_host_header() {
        assert_eq!(
            via_node(
                "http://127.0.0.1:8080",
                "http://hello.acme.fn.test:8080/a?b=1"
            ),
            (
                "http://127.0.0.1:8080/a?b=1".to_string(),
                Some("hello.acme.fn.test:8080".to_string())
            )
        );
        assert_eq!(
            via_node("http://127.0.0.1:8080", "http://127.0.0.1:8080/hello"),
            ("http://127.0.0.1:8080/hello".to_string(), None)
        );
        assert_eq!(
            via_node("http://127.0.0.1:8080", "http://hello.acme.fn.test:8080"),
            (
                "http://127.0.0.1:8080".to_string(),
                Some("hello.acme.fn.test:8080".to_string())
            )
        );
    }
}
