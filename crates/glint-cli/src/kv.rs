//! `glint kv`: the tenant's KV stores through the admin API.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;

use crate::client::{Client, Connect};
use crate::output::{self, Format, show};

/// The tenant's KV stores: list stores, and get, set, delete and list keys.
#[derive(clap::Subcommand)]
#[command(
    after_help = "Examples:\n  glint kv stores\n  glint kv set counters hits 0\n  glint kv get counters hits\n  glint kv list counters --prefix user/\n  glint kv set assets logo.png --file logo.png"
)]
pub enum KvCommand {
    /// List the KV stores with their key counts and sizes.
    Stores,
    /// Create a store (a deploy creates the stores its manifest lists).
    Create { store: String },
    /// Print a key's value (raw bytes).
    Get {
        store: String,
        #[arg(value_name = "KEY")]
        entry: String,
        /// Write the value to this file instead of stdout.
        #[arg(long, short = 'o')]
        output_file: Option<PathBuf>,
    },
    /// Set a key, to VALUE, to a file's bytes (--file), or to stdin (VALUE `-` or none).
    Set {
        store: String,
        #[arg(value_name = "KEY")]
        entry: String,
        value: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Delete a key.
    Delete {
        store: String,
        #[arg(value_name = "KEY")]
        entry: String,
    },
    /// List keys in order, a page at a time.
    List {
        store: String,
        #[arg(long)]
        prefix: Option<String>,
        /// Where the previous page ended (printed with it).
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

pub async fn run(command: KvCommand, connect: Connect<'_>, format: Format) -> Result<()> {
    let client = connect()?;
    match command {
        KvCommand::Stores => stores(&client, format).await,
        KvCommand::Create { store } => create(&client, &store).await,
        KvCommand::Get {
            store,
            entry,
            output_file,
        } => get(&client, &store, &entry, output_file).await,
        KvCommand::Set {
            store,
            entry,
            value,
            file,
        } => set(&client, &store, &entry, read_value(value, file)?).await,
        KvCommand::Delete { store, entry } => delete(&client, &store, &entry).await,
        KvCommand::List {
            store,
            prefix,
            cursor,
            limit,
        } => {
            let opts = ListOptions {
                prefix,
                cursor,
                limit,
            };
            list(&client, &store, opts, format).await
        }
    }
}

/// Everything but unreserved characters and '/', which the API takes as part of a key.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn key_path(store: &str, key: &str) -> String {
    format!(
        "/api/v1/kv/{}/keys/{}",
        utf8_percent_encode(store, KEY),
        utf8_percent_encode(key, KEY)
    )
}

async fn stores(client: &Client, format: Format) -> Result<()> {
    let body = client.get("/api/v1/kv").await?;
    show(format, &body, |body| {
        let rows: Vec<Vec<String>> = body["stores"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                vec![
                    s["name"].as_str().unwrap_or_default().to_string(),
                    s["keys"].to_string(),
                    output::size(s["bytes"].as_u64().unwrap_or(0)),
                    output::time(s["created_at_ms"].as_i64().unwrap_or(0)),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!(
                "no KV stores yet; list one under [kv] stores in a function's glint.toml and deploy, or `glint kv create NAME`"
            );
        } else {
            output::table(&["STORE", "KEYS", "SIZE", "CREATED"], &rows);
            let quota = body["limits"]["store_quota_bytes"].as_u64().unwrap_or(0);
            println!("quota per store: {}", output::size(quota));
        }
    });
    Ok(())
}

async fn create(client: &Client, store: &str) -> Result<()> {
    let path = format!("/api/v1/kv/{}", utf8_percent_encode(store, KEY));
    client.json(client.request(Method::PUT, &path)).await?;
    println!("KV store {store} is ready");
    Ok(())
}

async fn get(client: &Client, store: &str, key: &str, output: Option<PathBuf>) -> Result<()> {
    let resp = client
        .send(client.request(Method::GET, &key_path(store, key)))
        .await?;
    let bytes = resp.bytes().await.context("cannot read the value")?;
    match output {
        Some(path) => std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if !bytes.ends_with(b"\n") && std::io::IsTerminal::is_terminal(&out) {
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

/// The value from the argument, a file, or stdin (when neither is given, or VALUE is `-`).
fn read_value(value: Option<String>, file: Option<PathBuf>) -> Result<Vec<u8>> {
    match (value, file) {
        (Some(v), None) if v != "-" => Ok(v.into_bytes()),
        (None, Some(path)) => {
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        }
        (Some(_), Some(_)) => anyhow::bail!("give the value or --file, not both"),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read the value from stdin")?;
            Ok(buf)
        }
    }
}

async fn set(client: &Client, store: &str, key: &str, value: Vec<u8>) -> Result<()> {
    let size = value.len();
    let req = client
        .request(Method::PUT, &key_path(store, key))
        .header("content-type", "application/octet-stream")
        .body(value);
    client.json(req).await?;
    println!("set {key} in {store} ({})", output::size(size as u64));
    Ok(())
}

async fn delete(client: &Client, store: &str, key: &str) -> Result<()> {
    client
        .json(client.request(Method::DELETE, &key_path(store, key)))
        .await?;
    println!("deleted {key} from {store}");
    Ok(())
}

struct ListOptions {
    prefix: Option<String>,
    cursor: Option<String>,
    limit: usize,
}

async fn list(client: &Client, store: &str, opts: ListOptions, format: Format) -> Result<()> {
    let mut req = client
        .request(
            Method::GET,
            &format!("/api/v1/kv/{}/keys", utf8_percent_encode(store, KEY)),
        )
        .query(&[("limit", opts.limit.to_string())]);
    if let Some(p) = &opts.prefix {
        req = req.query(&[("prefix", p)]);
    }
    if let Some(c) = &opts.cursor {
        req = req.query(&[("cursor", c)]);
    }
    let body = client.json(req).await?;
    show(format, &body, |body| {
        for key in body["keys"].as_array().into_iter().flatten() {
            println!("{}", key.as_str().unwrap_or_default());
        }
        if let Some(cursor) = body["cursor"].as_str() {
            eprintln!("more keys follow: glint kv list {store} --cursor {cursor:?}");
        }
    });
    Ok(())
}
