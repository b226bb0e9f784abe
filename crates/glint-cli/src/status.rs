//! `glint status`: whether a function is ready, and each version's state on the node.

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
