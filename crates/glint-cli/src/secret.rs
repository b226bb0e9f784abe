//! `glint secret`: the tenant's secrets. Values are read from stdin (hidden when typed
//! at a terminal) and never printed.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::json;

use crate::Format;
use crate::client::Client;
use crate::lifecycle::show;
use crate::output;

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

pub async fn set(client: &Client, name: &str) -> Result<()> {
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

pub async fn list(client: &Client, format: Format) -> Result<()> {
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

pub async fn delete(client: &Client, name: &str) -> Result<()> {
    client
        .json(client.request(Method::DELETE, &format!("/api/v1/secrets/{name}")))
        .await?;
    println!("deleted secret {name}");
    Ok(())
}
