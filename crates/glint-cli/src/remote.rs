//! `glint remote`: the PhotonIQ FaaS CLI's verbs, mapped onto Glint's own commands, so
//! scripts written for that CLI keep working.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::client::Connect;
use crate::execute::{self, Call};
use crate::lifecycle;
use crate::logs::{self, LogFilter};
use crate::output::Format;
use crate::status;

/// The PhotonIQ FaaS CLI's remote verbs.
#[derive(Subcommand)]
#[command(
    after_help = "Examples:\n  glint remote deploy\n  glint remote execute hello --data '{}' --header 'content-type: application/json'\n  glint remote alias update hello latest --version v1 --weight 0.9 --version v2 --weight 0.1"
)]
pub enum RemoteCommand {
    /// Deploy the function in PATH (default: this folder).
    Deploy {
        path: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Call a function.
    Execute {
        name: String,
        #[command(flatten)]
        call: Call,
    },
    List,
    Info {
        name: String,
    },
    Download {
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long, short = 'o')]
        output_file: Option<PathBuf>,
    },
    Delete {
        name: String,
        #[arg(long, short)]
        force: bool,
    },
    /// `version list NAME`.
    #[command(subcommand)]
    Version(RemoteVersion),
    /// `alias list|info|update`.
    #[command(subcommand)]
    Alias(RemoteAlias),
    Logs {
        name: String,
        #[command(flatten)]
        filter: LogFilter,
    },
    Status {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum RemoteVersion {
    List { name: String },
}

#[derive(Subcommand)]
pub enum RemoteAlias {
    List {
        name: String,
    },
    Info {
        name: String,
        alias: String,
    },
    /// Set an alias's versions: --version v1 --weight 0.9 --version v2 --weight 0.1.
    Update {
        name: String,
        alias: String,
        #[arg(long = "version", required = true)]
        versions: Vec<String>,
        #[arg(long = "weight")]
        weights: Vec<f64>,
    },
}

pub async fn run(command: RemoteCommand, connect: Connect<'_>, format: Format) -> Result<ExitCode> {
    let client = &connect()?;
    match command {
        RemoteCommand::Deploy { path, name } => {
            let path = path.unwrap_or_else(|| PathBuf::from("."));
            lifecycle::deploy(
                client,
                &path,
                name,
                Some("latest"),
                true,
                Some(std::time::Duration::from_secs(60)),
                format,
            )
            .await?
        }
        RemoteCommand::Execute { name, call } => {
            let mut call = call;
            if call.data.is_some() || call.file.is_some() {
                call.method = "POST".into();
            }
            return execute::send(client, &name, call).await;
        }
        RemoteCommand::List => lifecycle::list(client, format).await?,
        RemoteCommand::Info { name } => lifecycle::info(client, &name, format).await?,
        RemoteCommand::Download {
            name,
            version,
            output_file,
        } => lifecycle::download(client, &name, version, output_file).await?,
        RemoteCommand::Delete { name, force } => lifecycle::delete(client, &name, force).await?,
        RemoteCommand::Version(RemoteVersion::List { name }) => {
            lifecycle::versions(client, &name, format).await?
        }
        RemoteCommand::Alias(RemoteAlias::List { name }) => {
            lifecycle::alias_list(client, &name, format).await?
        }
        RemoteCommand::Alias(RemoteAlias::Info { name, alias }) => {
            lifecycle::alias_info(client, &name, &alias, format).await?
        }
        RemoteCommand::Alias(RemoteAlias::Update {
            name,
            alias,
            versions,
            weights,
        }) => {
            if !weights.is_empty() && weights.len() != versions.len() {
                anyhow::bail!("give one --weight per --version, or none for an even split");
            }
            let pairs: Vec<String> = versions
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{v}={}", weights.get(i).copied().unwrap_or(1.0)))
                .collect();
            lifecycle::alias_set(client, &name, &alias, lifecycle::parse_weights(&pairs)?).await?
        }
        RemoteCommand::Logs { name, filter } => logs::print(client, &name, &filter, format).await?,
        RemoteCommand::Status { name } => status::print(client, &name, format).await?,
    }
    Ok(ExitCode::SUCCESS)
}
