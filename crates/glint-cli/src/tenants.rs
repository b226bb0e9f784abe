//! `glint tenants`: the operator makes, lists and shows tenants, and gives a tenant a key.

use anyhow::Result;
use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Connect};
use crate::output::{self, Format};

/// Make, list and show tenants (operator).
#[derive(clap::Subcommand)]
#[command(
    after_help = "Examples:\n  glint tenants create acme\n  glint tenants create acme --output json\n  glint tenants list\n  glint tenants show acme\n  glint tenants key acme ci --role deploy\n  glint tenants suspend acme\n  glint tenants resume acme\n  glint tenants quota acme --functions 10 --versions 5 --component-mb 200 --rps 50\n  glint tenants delete acme --yes"
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
    /// Show a tenant's quotas, or set some (the others stay as they are).
    Quota {
        name: String,
        /// Functions it may have.
        #[arg(long)]
        functions: Option<u64>,
        /// Versions it may keep of each function.
        #[arg(long)]
        versions: Option<u64>,
        /// Megabytes (MiB) of components its versions may hold.
        #[arg(long)]
        component_mb: Option<u64>,
        /// Requests per second its functions take on each node.
        #[arg(long)]
        rps: Option<u64>,
        /// Instances its functions run at once on each node.
        #[arg(long)]
        instances: Option<u64>,
        /// Back to the node's defaults, before any of the above is set.
        #[arg(long)]
        reset: bool,
    },
    /// Delete a tenant with all its functions, KV stores, secrets, keys, logs and usage;
    /// prints what was removed and its final usage. Running it again finishes a
    /// deletion that was cut short.
    Delete {
        name: String,
        /// Delete without asking (needed off a terminal).
        #[arg(long)]
        yes: bool,
    },
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
        TenantsCommand::Delete { name, yes } => delete(&client, &name, yes, format).await,
        TenantsCommand::Quota {
            name,
            functions,
            versions,
            component_mb,
            rps,
            instances,
            reset,
        } => {
            let component_bytes = match component_mb {
                Some(mb) => Some(mb.checked_mul(1 << 20).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--component-mb {mb} is too large; give at most {}",
                        u64::MAX >> 20
                    )
                })?),
                None => None,
            };
            let set = [
                ("functions", functions),
                ("versions_per_function", versions),
                ("component_bytes", component_bytes),
                ("requests_per_second", rps),
                ("instances_per_node", instances),
            ];
            quota(&client, &name, &set, reset, format).await
        }
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

async fn quota(
    client: &Client,
    name: &str,
    set: &[(&str, Option<u64>)],
    reset: bool,
    format: Format,
) -> Result<()> {
    let path = format!("/api/v1/tenants/{name}");
    let mut body = client.get(&path).await?;
    if reset || set.iter().any(|(_, v)| v.is_some()) {
        let mut quotas = if reset {
            json!({})
        } else {
            body["quotas"].clone()
        };
        for (key, value) in set {
            if let Some(value) = value {
                quotas[*key] = json!(value);
            }
        }
        let req = client
            .request(Method::PUT, &format!("{path}/quotas"))
            .json(&quotas);
        body = client.json(req).await?;
    }
    output::show(format, &body, |body| {
        let own = &body["quotas"];
        let rows: Vec<Vec<String>> = [
            "functions",
            "versions_per_function",
            "component_bytes",
            "requests_per_second",
            "instances_per_node",
        ]
        .iter()
        .map(|key| {
            let value = &body["effective_quotas"][*key];
            vec![
                key.to_string(),
                value.as_u64().map_or("no limit".into(), |v| v.to_string()),
                if own[*key].is_null() {
                    "default"
                } else {
                    "set"
                }
                .to_string(),
            ]
        })
        .collect();
        output::table(&["QUOTA", "LIMIT", "FROM"], &rows);
    });
    Ok(())
}

async fn delete(client: &Client, name: &str, yes: bool, format: Format) -> Result<()> {
    use std::io::IsTerminal;
    if !yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "deleting tenant '{name}' removes all its data for good; pass --yes to go ahead"
            );
        }
        let question = format!(
            "Delete tenant '{name}' with all its functions, KV stores, secrets, keys, logs and usage?"
        );
        if !crate::lifecycle::confirm(&question)? {
            println!("nothing deleted");
            return Ok(());
        }
    }
    let req = client.request(Method::DELETE, &format!("/api/v1/tenants/{name}"));
    let body = client.json(req).await?;
    output::show(format, &body, |body| {
        let (r, kv) = (&body["removed"], &body["kv"]);
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        if body["complete"] == true {
            println!("deleted tenant '{name}'; removed:");
        } else {
            println!(
                "tenant '{name}' is being deleted; regions not reached: {}; run this again to finish. Removed so far:",
                r["pending_regions"]
            );
        }
        let rows = vec![
            vec!["functions".into(), n(&r["functions"]).to_string()],
            vec!["versions".into(), n(&r["versions"]).to_string()],
            vec![
                "components".into(),
                format!(
                    "{} ({} bytes)",
                    n(&r["components"]),
                    n(&r["component_bytes"])
                ),
            ],
            vec![
                "KV stores".into(),
                format!(
                    "{} ({} keys, {} bytes)",
                    n(&kv["stores"]),
                    n(&kv["keys"]),
                    n(&kv["bytes"])
                ),
            ],
            vec!["secrets".into(), n(&r["secrets"]).to_string()],
            vec!["API keys".into(), n(&r["keys"]).to_string()],
            vec!["log records".into(), n(&r["log_records"]).to_string()],
            vec!["usage records".into(), n(&r["usage_records"]).to_string()],
        ];
        output::table(&["WHAT", "REMOVED"], &rows);
        for month in body["final_usage"].as_array().into_iter().flatten() {
            println!(
                "usage from {}: {} requests, {:.3} GB-s, {:.0} CPU-ms, {} bytes in, {} bytes out",
                output::time(month["start_ms"].as_i64().unwrap_or(0)),
                n(&month["requests"]),
                month["gb_seconds"].as_f64().unwrap_or(0.0),
                month["cpu_ms"].as_f64().unwrap_or(0.0),
                n(&month["bytes_in"]),
                n(&month["bytes_out"]),
            );
        }
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
