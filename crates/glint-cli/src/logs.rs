//! `glint logs`: a function's log lines, from history and, with `--follow`, live.

use anyhow::Result;
use futures_util::StreamExt;
use glint_store::FunctionName;
use reqwest::Method;
use serde_json::Value;

use crate::client::{self, Client, Connect};
use crate::output::{self, Format};

/// Show a function's log lines.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  glint logs hello --since 10m\n  glint logs hello --level error --lines 50"
)]
pub struct LogsArgs {
    name: String,
    #[command(flatten)]
    filter: LogFilter,
}

// Which lines to show; `glint remote logs` takes the same flags. No doc comment: on a
// flattened struct it would replace the command's about text.
#[derive(clap::Args)]
pub struct LogFilter {
    /// Keep printing lines as they are written (Ctrl-C stops).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only lines newer than this: 30s, 10m, 2h, 1d, or epoch milliseconds (default: the
    /// last hour).
    #[arg(long)]
    since: Option<String>,
    /// Only lines older than this, in the same forms as --since.
    #[arg(long)]
    until: Option<String>,
    /// Only lines of this version (v3).
    #[arg(long = "version", value_name = "VERSION")]
    version: Option<String>,
    /// At most this many lines (the newest).
    #[arg(long, short = 'n')]
    lines: Option<usize>,
    /// Only lines at this level or above.
    #[arg(long)]
    level: Option<String>,
    /// Only the lines of one invocation (its x-glint-execution-id).
    #[arg(long)]
    execution_id: Option<String>,
}

pub async fn run(args: LogsArgs, connect: Connect<'_>, format: Format) -> Result<()> {
    print(&connect()?, &args.name, &args.filter, format).await
}

pub async fn print(client: &Client, name: &str, filter: &LogFilter, format: Format) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let mut common = Vec::new();
    for (key, value) in [
        ("level", &filter.level),
        ("execution_id", &filter.execution_id),
        ("version", &filter.version),
    ] {
        if let Some(v) = value {
            common.push((key, v.clone()));
        }
    }
    // Following starts listening before it reads the history, so no line falls between.
    let live = if filter.follow {
        let mut query = common.clone();
        query.push(("function", name.to_string()));
        let req = client
            .request(Method::GET, "/api/v1/logs/stream")
            .query(&query)
            .header("accept", "text/event-stream");
        Some(client.send(req).await?)
    } else {
        None
    };
    let default_lines = if filter.follow { 10 } else { 100 };
    let mut query = common;
    query.push(("lines", filter.lines.unwrap_or(default_lines).to_string()));
    for (key, value) in [("since", &filter.since), ("end", &filter.until)] {
        if let Some(v) = value {
            query.push((key, v.clone()));
        }
    }
    let req = client
        .request(Method::GET, &format!("/api/v1/functions/{name}/logs"))
        .query(&query);
    let body = client.json(req).await?;
    let history: Vec<Value> = body["lines"].as_array().cloned().unwrap_or_default();
    let print = |line: &Value| match format {
        Format::Json => println!("{line}"),
        Format::Table => output::log_line(line),
    };
    if live.is_none() && format == Format::Json {
        output::print_json(&body);
        return Ok(());
    }
    for line in &history {
        print(line);
    }
    let Some(live) = live else { return Ok(()) };
    let mut events = client::sse_events(live);
    while let Some(event) = events.next().await {
        let event = event?;
        if event.name.as_deref() == Some("skipped") {
            eprintln!("({} lines skipped: this terminal fell behind)", event.data);
            continue;
        }
        if event.name.as_deref() == Some("revoked") {
            anyhow::bail!(
                "{}; sign in again with a live key (`glint login`)",
                event.data
            );
        }
        let Ok(line) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        // A line the history already showed.
        if history.contains(&line) {
            continue;
        }
        print(&line);
    }
    Ok(())
}
