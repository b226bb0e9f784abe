//! The config function: reads its configuration through `wasi:config`.
//!
//! `GREETING` comes from glint.toml's `[env]`; `API_TOKEN` is a secret the manifest asks
//! for, set with `glint secret`. The answer says whether the secret is set and how long it
//! is, never what it is.

use glint::Request;
use glint::http::StatusCode;

fn handle(_req: Request) -> Result<String, (StatusCode, String)> {
    let failed = |e: glint::config::Error| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("config error: {e}\n"),
        )
    };
    let greeting = glint::config::get("GREETING").map_err(failed)?;
    let token = glint::config::get("API_TOKEN").map_err(failed)?;
    let token = match token {
        Some(token) => format!("set ({} chars)", token.chars().count()),
        None => "not set".to_string(),
    };
    Ok(format!(
        "GREETING: {}\nAPI_TOKEN: {token}\n",
        greeting.as_deref().unwrap_or("(not set)")
    ))
}

glint::http_handler!(handle);
