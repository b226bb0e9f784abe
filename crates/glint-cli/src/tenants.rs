//! `glint tenants`: the operator makes, lists and shows tenants, and gives a tenant a key.

use anyhow::Result;
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Connect};
use crate::output::{self, Format};

/// Make, list and show tenants (operator).
#[derive(clap::Subcommand)]
#[command(
    after_help = "Examples:\n  glint tenants create acme\n  glint tenants create acme --output json\n  glint tenants list\n  glint tenants show acme\n  glint tenants key acme ci --role deploy\n  glint tenants suspend acme\n  glint tenants resume acme"
)]
pub enum TenantsCommand {
    /// Make a tenant; prints its first admin key, shown once.
    Create {
        /// 1 to 63 lowercase letters, digits or '-'.
        name: String,
    },
    /// List the tenants.
    List,
    /// Show one tenant.
    Show { name: String },
    /// Suspend a tenant: its functions answer 403 and its keys only read; its data stays.
    Suspend { name: String },
    /// Resume a suspended tenant.
    Resume { name: String },
    /// Make a key of a tenant (its admin's lost key replaced, say); shown once.
    Key {
        tenant: String,
        /// What the key is for.
        name: String,
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

pub async fn run(command: TenantsCommand, connect: Connect<'_>, format: Format) -> Result<()> {
    let client = connect()?;
    match command {
        TenantsCommand::Create { name } => create(&client, &name, format).await,
        TenantsCommand::List => list(&client, format).await,
        TenantsCommand::Show { name } => show(&client, &name, format).await,
        TenantsCommand::Suspend { name } => set_status(&client, &name, "suspend", format).await,
        TenantsCommand::Resume { name } => set_status(&client, &name, "resume", format).await,
        TenantsCommand::Key { tenant, name, role } => {
            key(&client, &tenant, &name, &role, format).await
        }
    }
}

async fn create(client: &Client, name: &str, format: Format) -> Result<()> {
    let req = client
        .request(Method::POST, "/api/v1/tenants")
        .json(&json!({ "name": name }));
    let body = client.json(req).await?;
    if format == Format::Json {
        output::print_json(&json!({ "tenant": body["tenant"], "key": body["key"] }));
        return Ok(());
    }
    println!("created tenant '{name}'; its admin key:");
    println!("  {}", body["key"].as_str().unwrap_or("?"));
    println!("the key is shown only this once; store it now");
    Ok(())
}

fn row(t: &serde_json::Value) -> Vec<String> {
    let created = t["created_at_ms"].as_i64().unwrap_or(0);
    vec![
        t["id"].as_str().unwrap_or_default().to_string(),
        t["status"].as_str().unwrap_or_default().to_string(),
        if created > 0 {
            output::time(created)
        } else {
            "-".to_string()
        },
    ]
}

async fn list(client: &Client, format: Format) -> Result<()> {
    let body = client.get("/api/v1/tenants").await?;
    output::show(format, &body, |body| {
        let rows: Vec<Vec<String>> = body["tenants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(row)
            .collect();
        output::table(&["TENANT", "STATUS", "CREATED"], &rows);
    });
    Ok(())
}

async fn show(client: &Client, name: &str, format: Format) -> Result<()> {
    let body = client.get(&format!("/api/v1/tenants/{name}")).await?;
    output::show(format, &body, |body| {
        output::table(&["TENANT", "STATUS", "CREATED"], &[row(body)]);
    });
    Ok(())
}

async fn set_status(client: &Client, name: &str, action: &str, format: Format) -> Result<()> {
    let req = client.request(Method::POST, &format!("/api/v1/tenants/{name}/{action}"));
    let body = client.json(req).await?;
    output::show(format, &body, |body| {
        println!(
            "tenant '{name}' is {}",
            body["status"].as_str().unwrap_or("?")
        );
    });
    Ok(())
}

async fn key(client: &Client, tenant: &str, name: &str, role: &str, format: Format) -> Result<()> {
    let req = client
        .request(Method::POST, &format!("/api/v1/tenants/{tenant}/keys"))
        .json(&json!({ "name": name, "role": role }));
    let body = client.json(req).await?;
    crate::keys::print_created(
        &body,
        &format!("{role} key '{name}' of tenant '{tenant}'"),
        format,
    );
    Ok(())
}
