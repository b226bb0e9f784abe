//! `glint keys`: create, list and revoke the tenant's API keys (an admin's job).

use anyhow::Result;
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Connect};
use crate::output::{self, Format};

/// Create, list and revoke API keys (admin).
#[derive(clap::Subcommand)]
#[command(
    after_help = "Examples:\n  glint keys create ci --role deploy\n  glint keys list\n  glint keys revoke key_0123456789ab"
)]
pub enum KeysCommand {
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

pub async fn run(command: KeysCommand, connect: Connect<'_>, format: Format) -> Result<()> {
    match command {
        KeysCommand::Create { name, role } => create(&connect()?, &name, &role, format).await,
        KeysCommand::List => list(&connect()?, format).await,
        KeysCommand::Revoke { id } => revoke(&connect()?, &id).await,
    }
}

async fn create(client: &Client, name: &str, role: &str, format: Format) -> Result<()> {
    let req = client
        .request(Method::POST, "/api/v1/keys")
        .json(&json!({ "name": name, "role": role }));
    let body = client.json(req).await?;
    print_created(&body, &format!("{role} key '{name}'"), format);
    Ok(())
}

/// Prints a key just made, `what` saying which: JSON as the API gave it, or the key
/// with a reminder that it is shown once.
pub fn print_created(body: &serde_json::Value, what: &str, format: Format) {
    if format == Format::Json {
        output::print_json(body);
        return;
    }
    println!("created {what} ({})", body["id"].as_str().unwrap_or("?"));
    println!("  {}", body["key"].as_str().unwrap_or("?"));
    println!("the key is shown only this once; store it now");
}

async fn list(client: &Client, format: Format) -> Result<()> {
    let body = client.get("/api/v1/keys").await?;
    if format == Format::Json {
        output::print_json(&body);
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

async fn revoke(client: &Client, id: &str) -> Result<()> {
    client
        .json(client.request(Method::DELETE, &format!("/api/v1/keys/{id}")))
        .await?;
    println!("revoked {id}");
    Ok(())
}
