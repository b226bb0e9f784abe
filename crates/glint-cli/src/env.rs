//! `glint env`: the env vars a function gets through the admin API, on top of its
//! manifest's `[env]`.

use anyhow::Result;
use glint_store::FunctionName;
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Connect};
use crate::output::{self, Format};

/// List, set or unset a function's env vars.
#[derive(clap::Subcommand)]
#[command(
    after_help = "Examples:\n  glint env list hello\n  glint env set hello GREETING Hi\n  glint env unset hello GREETING"
)]
pub enum EnvCommand {
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

pub async fn run(command: EnvCommand, connect: Connect<'_>, format: Format) -> Result<()> {
    match command {
        EnvCommand::List { name } => list(&connect()?, &name, format).await,
        EnvCommand::Set { name, var, value } => {
            let (var, value) = match (value, var.split_once('=')) {
                (Some(value), _) => (var, value),
                (None, Some((k, v))) => (k.to_string(), v.to_string()),
                (None, None) => anyhow::bail!(
                    "no value for {var}: write `glint env set {name} {var} VALUE` or `glint env set {name} {var}=VALUE`"
                ),
            };
            set(&connect()?, &name, &var, &value).await
        }
        EnvCommand::Unset { name, var } => unset(&connect()?, &name, &var).await,
    }
}

async fn list(client: &Client, name: &str, format: Format) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let body = client.get(&format!("/api/v1/functions/{name}/env")).await?;
    if format == Format::Json {
        output::print_json(&body);
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

async fn set(client: &Client, name: &str, key: &str, value: &str) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let req = client
        .request(Method::PUT, &format!("/api/v1/functions/{name}/env/{key}"))
        .json(&json!({ "value": value }));
    client.json(req).await?;
    println!("set {key} on {name}");
    Ok(())
}

async fn unset(client: &Client, name: &str, key: &str) -> Result<()> {
    let name: FunctionName = name.parse()?;
    client
        .json(client.request(
            Method::DELETE,
            &format!("/api/v1/functions/{name}/env/{key}"),
        ))
        .await?;
    println!("unset {key} on {name}");
    Ok(())
}
