//! `glint secret`: the tenant's secrets. Values are read from stdin (hidden when typed
//! at a terminal) and never printed.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Connect};
use crate::output::{self, Format, show};

/// The tenant's secrets: set (value from stdin), list names, delete.
#[derive(clap::Subcommand)]
#[command(
    after_help = "Examples:\n  glint secret set API_TOKEN            # type the value; input is hidden\n  printf %s \"$TOKEN\" | glint secret set API_TOKEN\n  glint secret list\n\nA function reads a secret when its glint.toml lists it: secrets = [\"API_TOKEN\"]"
)]
pub enum SecretCommand {
    /// Set a secret; the value is read from stdin, hidden when typed.
    Set { name: String },
    /// List the secrets' names (never their values).
    List,
    /// Delete a secret.
    Delete { name: String },
}

pub async fn run(command: SecretCommand, connect: Connect<'_>, format: Format) -> Result<()> {
    let client = connect()?;
    match command {
        SecretCommand::Set { name } => set(&client, &name).await,
        SecretCommand::List => list(&client, format).await,
        SecretCommand::Delete { name } => delete(&client, &name).await,
    }
}

/// Reads the value: hidden from a terminal, or all of stdin with one trailing newline
/// taken off (as `echo` adds one).
fn read_value(name: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("value of {name} (input hidden): "))
            .context("cannot read the value");
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read the value from stdin (it must be UTF-8 text)")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

async fn set(client: &Client, name: &str) -> Result<()> {
    let value = read_value(name)?;
    if value.is_empty() {
        bail!(
            "the value of {name} is empty; pipe it in, e.g. `printf %s \"$TOKEN\" | glint secret set {name}`"
        );
    }
    let req = client
        .request(Method::PUT, &format!("/api/v1/secrets/{name}"))
        .json(&json!({ "value": value }));
    client.json(req).await?;
    println!("set secret {name}; functions that list it under `secrets` in glint.toml see it now");
    Ok(())
}

async fn list(client: &Client, format: Format) -> Result<()> {
    let body = client.get("/api/v1/secrets").await?;
    show(format, &body, |body| {
        let rows: Vec<Vec<String>> = body["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                vec![
                    s["name"].as_str().unwrap_or_default().to_string(),
                    output::time(s["updated_at_ms"].as_i64().unwrap_or(0)),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!(
                "no secrets; set one with `glint secret set NAME` (the value is read from stdin)"
            );
        } else {
            output::table(&["NAME", "UPDATED"], &rows);
        }
    });
    Ok(())
}

async fn delete(client: &Client, name: &str) -> Result<()> {
    client
        .json(client.request(Method::DELETE, &format!("/api/v1/secrets/{name}")))
        .await?;
    println!("deleted secret {name}");
    Ok(())
}
