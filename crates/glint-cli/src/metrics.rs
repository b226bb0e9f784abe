//! `glint metrics`: what functions used per period (requests, errors, bytes, time,
//! GB-seconds), as the node's usage counters record it.

use anyhow::Result;
use glint_store::FunctionName;
use reqwest::Method;

use crate::client::{Client, Connect};
use crate::output::{self, Format};

/// Show what a function used per period: requests, errors, bytes, time, GB-seconds.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  glint metrics hello --period hour\n  glint metrics hello --period minute --since 30m\n  glint metrics --period day      # every function together"
)]
pub struct MetricsArgs {
    name: Option<String>,
    #[arg(long, value_enum, default_value_t = Period::Hour)]
    period: Period,
    /// Start of the range: 30m, 2d, or epoch milliseconds (default: a span that fits
    /// the period).
    #[arg(long)]
    since: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Period {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

pub async fn run(args: MetricsArgs, connect: Connect<'_>, format: Format) -> Result<()> {
    print(
        &connect()?,
        args.name.as_deref(),
        args.period,
        args.since,
        format,
    )
    .await
}

async fn print(
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
        query.push(("function", n.parse::<FunctionName>()?.to_string()));
    }
    if let Some(s) = since {
        query.push(("start", s));
    }
    let body = client
        .json(client.request(Method::GET, "/api/v1/usage").query(&query))
        .await?;
    output::show(format, &body, output::usage);
    Ok(())
}
