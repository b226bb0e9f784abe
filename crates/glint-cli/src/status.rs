//! `glint status`: whether a function is ready, and each version's state on the node;
//! `glint nodes`: the nodes that share the store; `glint regions`: their regions.

use anyhow::Result;
use glint_store::FunctionName;

use crate::client::{Client, Connect};
use crate::output::{self, Format};

/// Show whether a function is ready, and its versions' state on the node.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  glint status hello")]
pub struct StatusArgs {
    name: String,
}

pub async fn run(args: StatusArgs, connect: Connect<'_>, format: Format) -> Result<()> {
    print(&connect()?, &args.name, format).await
}

pub async fn print(client: &Client, name: &str, format: Format) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let body = client
        .get(&format!("/api/v1/functions/{name}/status"))
        .await?;
    output::show(format, &body, output::status);
    Ok(())
}

/// List the nodes that share this node's store, from their heartbeats.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  glint nodes")]
pub struct NodesArgs {}

pub async fn nodes(connect: Connect<'_>, format: Format) -> Result<()> {
    let body = connect()?.get("/api/v1/nodes").await?;
    output::show(format, &body, |v| {
        let rows: Vec<Vec<String>> = v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let mark = if n["this_node"].as_bool() == Some(true) {
                    " *"
                } else {
                    ""
                };
                vec![
                    format!("{}{mark}", n["id"].as_str().unwrap_or_default()),
                    n["region"].as_str().unwrap_or_default().to_string(),
                    n["address"].as_str().unwrap_or_default().to_string(),
                    n["version"].as_str().unwrap_or_default().to_string(),
                    format!("{}s", n["uptime_seconds"].as_i64().unwrap_or(0)),
                    format!(
                        "{:.1}s ago",
                        n["last_seen_ms_ago"].as_i64().unwrap_or(0) as f64 / 1000.0
                    ),
                    // Only the operator sees each node's count.
                    n["functions"]
                        .as_u64()
                        .map_or("-".into(), |n| n.to_string()),
                ]
            })
            .collect();
        output::table(
            &[
                "NODE",
                "REGION",
                "ADDRESS",
                "VERSION",
                "UPTIME",
                "SEEN",
                "FUNCTIONS",
            ],
            &rows,
        );
    });
    Ok(())
}

/// List the regions of the nodes that share the store: each region's nodes and when it
/// was last heard.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  glint regions")]
pub struct RegionsArgs {}

/// A region's copies of the shared buckets, as `registry 0 behind, ...`; `-` when it
/// keeps none (it reads the origin itself).
fn copies_cell(copies: &serde_json::Value) -> String {
    let each: Vec<String> = copies
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let of = c["of"].as_str().unwrap_or("?");
            match (c["lag"].as_u64(), c["error"].as_str()) {
                (Some(lag), _) => format!("{of} {lag} behind"),
                (None, Some(_)) => format!("{of} unreachable"),
                (None, None) => format!("{of} ?"),
            }
        })
        .collect();
    if each.is_empty() {
        "-".into()
    } else {
        each.join(", ")
    }
}

pub async fn regions(connect: Connect<'_>, format: Format) -> Result<()> {
    let body = connect()?.get("/api/v1/regions").await?;
    output::show(format, &body, |v| {
        let rows: Vec<Vec<String>> = v["regions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let mark = if r["this_region"].as_bool() == Some(true) {
                    " *"
                } else {
                    ""
                };
                let nodes: Vec<&str> = r["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n["id"].as_str())
                    .collect();
                vec![
                    format!("{}{mark}", r["region"].as_str().unwrap_or_default()),
                    nodes.len().to_string(),
                    nodes.join(", "),
                    format!(
                        "{:.1}s ago",
                        r["last_heard_ms_ago"].as_i64().unwrap_or(0) as f64 / 1000.0
                    ),
                    copies_cell(&r["copies"]),
                ]
            })
            .collect();
        output::table(&["REGION", "NODES", "IDS", "HEARD", "COPIES"], &rows);
    });
    Ok(())
}
