//! Which node the CLI talks to: flags and env first, then a saved `glint login` profile,
//! then the local node's admin key file.
//!
//! Profiles live in `<config dir>/glint/profiles.toml` (mode 0600), overridable with
//! `GLINT_CONFIG_DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:9090";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    pub key: Option<String>,
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Profiles {
    /// The profile used when none is named.
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLINT_CONFIG_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("dev", "glint", "glint")
        .map(|d| d.config_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".glint-config"))
}

fn path() -> PathBuf {
    config_dir().join("profiles.toml")
}

impl Profiles {
    pub fn load() -> Result<Self> {
        let path = path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!(
                    "{} is not valid; fix it or delete it and `glint login` again",
                    path.display()
                )
            }),
            Err(_) => Ok(Self::default()),
        }
    }

    pub fn save(&self) -> Result<PathBuf> {
        let path = path();
        std::fs::create_dir_all(config_dir())
            .with_context(|| format!("cannot create {}", config_dir().display()))?;
        let text = toml::to_string_pretty(self)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            options.mode(0o600);
            // An existing file keeps its mode on open; make sure it is private.
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        use std::io::Write;
        let mut file = options
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        Ok(path)
    }

    /// The named profile, or the current one.
    pub fn select(&self, name: Option<&str>) -> Result<Option<Profile>> {
        match name {
            Some(n) => self.profiles.get(n).cloned().map(Some).with_context(|| {
                let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
                format!(
                    "no profile '{n}'; profiles: {}; add one with `glint login --profile {n}`",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            }),
            None => Ok(self
                .current
                .as_ref()
                .and_then(|c| self.profiles.get(c))
                .cloned()),
        }
    }
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("dev", "glint", "glint")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".glint-data"))
}

/// The node's data dir: `GLINT_DATA_DIR`, else the per-user default.
pub fn data_dir() -> PathBuf {
    std::env::var_os("GLINT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(default_data_dir)
}

/// Resolves the node to talk to from flags (and their env vars), then the profile, then
/// the defaults: the local admin API and the local node's admin key file.
pub fn resolve(
    url: Option<String>,
    key: Option<String>,
    ca_cert: Option<PathBuf>,
    profile: Option<&str>,
) -> Result<Profile> {
    let saved = Profiles::load()?.select(profile)?.unwrap_or_default();
    let url = url
        .filter(|u| !u.is_empty())
        .or(Some(saved.url.clone()).filter(|u| !u.is_empty()))
        .unwrap_or_else(|| DEFAULT_API_URL.to_string());
    let key = key.filter(|k| !k.is_empty()).or(saved.key).or_else(|| {
        std::fs::read_to_string(data_dir().join("admin-key"))
            .ok()
            .map(|k| k.trim().to_string())
    });
    Ok(Profile {
        url,
        key,
        ca_cert: ca_cert.or(saved.ca_cert),
    })
}
