//! `glint login`: check a node and API key, and save them as a profile for later
//! commands (see profiles.rs for how a command picks its node).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::client::Client;
use crate::profiles::{self, Profile, Profiles};

/// Check a node and API key, and save them as a profile.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  glint login --url https://glint.example.com:9090 --key glint_... --profile prod"
)]
pub struct LoginArgs {}

/// Logs in with the global flags as given (`--url`, `--key`, `--ca-cert`), saved as
/// `--profile` (default `default`).
pub async fn run(
    url: Option<String>,
    key: Option<String>,
    ca_cert: Option<PathBuf>,
    profile: Option<String>,
) -> Result<()> {
    // Only what was given now: a login must not copy another profile's key.
    let target = Profile {
        url: url.unwrap_or_else(|| profiles::DEFAULT_API_URL.to_string()),
        key,
        ca_cert,
    };
    let name = profile.unwrap_or_else(|| "default".to_string());
    let client = Client::new(&target.url, target.key.clone(), target.ca_cert.as_deref())?;
    save(&client, &name, target).await
}

/// Checks the node and key, then saves them as a profile.
async fn save(client: &Client, profile_name: &str, profile: Profile) -> Result<()> {
    if profile.key.is_none() {
        bail!("give the API key to save: glint login --url URL --key KEY (or GLINT_API_KEY)");
    }
    let node = client
        .get("/api/v1/functions")
        .await
        .context("the node refused the login")?;
    let count = node["functions"].as_array().map(Vec::len).unwrap_or(0);
    let mut profiles = Profiles::load()?;
    profiles
        .profiles
        .insert(profile_name.to_string(), profile.clone());
    if profiles.current.is_none() || profile_name == "default" {
        profiles.current = Some(profile_name.to_string());
    }
    let path = profiles.save()?;
    println!(
        "logged in to {} as profile '{profile_name}' ({count} functions); saved to {}",
        profile.url,
        path.display()
    );
    Ok(())
}
