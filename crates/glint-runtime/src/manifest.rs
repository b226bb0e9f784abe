//! The function manifest, `glint.toml`: what a deploy says about its function.
//!
//! Parsing rejects unknown keys, and every check names the key at fault, so a user can
//! fix the file without reading Glint's source. The sections of capabilities (`[kv]`,
//! `[outbound]`) are kept as TOML here and read by their own modules
//! (the capabilities), which also reject the top-level keys nobody reads.

use std::collections::BTreeMap;
use std::time::Duration;

use glint_store::{FunctionName, Level};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest linear memory any function may ask for: all a 32-bit wasm memory can
/// address. The pooling allocator reserves 4 GiB of address space per memory slot
/// anyway (wasmtime's default on 64-bit hosts, which lets it leave bounds checks out), so
/// this costs nothing until a guest really grows.
pub const MAX_MEMORY_MB: u64 = 4096;
const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
const MAX_BODY_BYTES: u64 = 512 * 1024 * 1024;
const MAX_CONCURRENCY: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
#[error("glint.toml: {0}")]
pub struct ManifestError(pub String);

/// glint.toml. Unknown keys inside the sections below are refused as it is parsed; the
/// other top-level keys land in `sections`, for the capabilities to read.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub lang: Option<String>,
    /// Path prefix on the data plane, such as `/hello` or `/api/users`. Defaults to `/<name>`.
    pub route: Option<String>,
    /// A free-form version label of the user's own (not Glint's version number).
    pub version: Option<String>,
    #[serde(default)]
    pub build: BuildSection,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub scaling: ScalingSection,
    #[serde(default)]
    pub logs: LogsSection,
    #[serde(default, skip_serializing_if = "HttpSection::is_empty")]
    pub http: HttpSection,
    /// Names of the tenant's secrets (`glint secret set`) this function may read, as env
    /// vars and through `wasi:config/store`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The capabilities' sections (`[kv]`, `[outbound]`), by key.
    #[serde(flatten)]
    pub sections: BTreeMap<String, toml::Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    pub command: Option<String>,
    /// The built component, relative to the manifest.
    pub component: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub memory_mb: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub max_body_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScalingSection {
    pub min_instances: Option<u32>,
    pub max_concurrency: Option<u32>,
    pub max_queue_ms: Option<u64>,
    pub reuse: Option<bool>,
    pub reuse_max_requests: Option<u32>,
    pub reuse_max_seconds: Option<u64>,
    pub max_concurrent_per_instance: Option<u32>,
}

/// `[http]`: how the guest sees the request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// `"glint"` (the default) or `"spin"`: see [`HttpStyle`].
    pub style: Option<String>,
}

impl HttpSection {
    fn is_empty(&self) -> bool {
        self.style.is_none()
    }
}

/// How a request reaches the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpStyle {
    /// The path after the function's route (`/users/7` of `/api/users/7` on `/api`), with
    /// the route in `x-forwarded-prefix`.
    #[default]
    Glint,
    /// As Spin's HTTP trigger sends it: the whole path, and the `spin-full-url`,
    /// `spin-path-info`, `spin-matched-route`, `spin-component-route`,
    /// `spin-raw-component-route`, `spin-base-path` and `spin-client-addr` headers.
    /// `glint deploy` of a spin.toml sets it.
    Spin,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    pub level: Option<String>,
}

/// The limits one invocation runs under, after the manifest's overrides.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_mb: u64,
    pub timeout_ms: u64,
    pub cpu_ms: u64,
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: 128,
            timeout_ms: 30_000,
            cpu_ms: 10_000,
            max_body_bytes: 10 * 1024 * 1024,
        }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mb * 1024 * 1024) as usize
    }
}

/// Per-function scaling on one node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    /// At least 1 pins the version's compiled code in memory; at 0 the node may evict
    /// it after a while idle, and the next request loads it back from the compile cache.
    pub min_instances: u32,
    /// Requests of one version that may run at once on a node.
    pub max_concurrency: u32,
    /// How long a request above `max_concurrency` waits for a slot before it gets 503.
    pub max_queue_ms: u64,
    /// Keep an instance between requests instead of a fresh one per request: module
    /// state (globals, caches) survives from one request to the next, and the start-up
    /// of a large guest (Python, JS) is paid once. One request at a time per instance.
    pub reuse: bool,
    /// A reused instance is retired after serving this many requests...
    pub reuse_max_requests: u32,
    /// ...or once it is this old, whichever comes first.
    pub reuse_max_seconds: u64,
    /// Requests one reused instance may serve at once: WASI 0.3 only, whose handler is
    /// async. At 1 (the default) a reused instance serves one request after another.
    pub max_concurrent_per_instance: u32,
}

impl Default for Scaling {
    fn default() -> Self {
        Self {
            min_instances: 0,
            max_concurrency: 100,
            max_queue_ms: 10_000,
            reuse: false,
            reuse_max_requests: 10_000,
            reuse_max_seconds: 300,
            max_concurrent_per_instance: 1,
        }
    }
}

/// A manifest after validation, with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionConfig {
    pub route: String,
    pub env: Vec<(String, String)>,
    pub limits: Limits,
    pub scaling: Scaling,
    pub log_level: Level,
    pub http_style: HttpStyle,
    /// The tenant's secrets the function may read.
    pub secrets: Vec<String>,
    /// The capabilities' sections, unchecked: see [`FunctionConfig::section`].
    pub sections: BTreeMap<String, toml::Value>,
}

impl FunctionConfig {
    /// Section `key` as its capability's type, or `None` when the manifest has none. A
    /// value of the wrong type or an unknown key names its place (`kv.stores`).
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ManifestError> {
        let Some(value) = self.sections.get(key) else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(value.clone())
            .map(Some)
            .map_err(|e| {
                let path = match e.path().to_string() {
                    p if p == "." => key.to_string(),
                    p => format!("{key}.{p}"),
                };
                ManifestError(format!("`{path}`: {}", e.inner().to_string().trim_end()))
            })
    }
}

fn range_check(
    key: &str,
    value: Option<u64>,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<(), ManifestError> {
    match value {
        Some(v) if v < min || v > max => Err(ManifestError(format!(
            "`{key}` must be between {min} and {max} {unit}, got {v}"
        ))),
        _ => Ok(()),
    }
}

/// An environment variable name: 1 to 128 letters, digits and '_', not starting with a
/// digit. The manifest's `[env]` and the API's env vars follow the same rule.
pub fn is_env_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !key.as_bytes()[0].is_ascii_digit()
}

/// Checks a route such as `/hello` or `/api/v2/users`.
pub fn validate_route(route: &str) -> Result<(), ManifestError> {
    let bad = |why: &str| {
        Err(ManifestError(format!(
            "`route` {route:?} is invalid: {why}; use a path such as \"/hello\" or \"/api/users\""
        )))
    };
    let Some(rest) = route.strip_prefix('/') else {
        return bad("it must start with '/'");
    };
    if rest.is_empty() {
        return bad("the root '/' cannot be a function's route");
    }
    for segment in rest.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return bad("it has an empty, '.' or '..' segment");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        {
            return bad("segments may hold only letters, digits, '-', '_', '.' and '~'");
        }
    }
    if route == "/api/faas" || route.starts_with("/api/faas/") {
        return bad("/api/faas is reserved for the execute endpoint");
    }
    Ok(())
}

impl Manifest {
    /// The top-level keys of glint.toml besides the capabilities' sections.
    pub const KEYS: &[&str] = &[
        "name",
        "description",
        "lang",
        "route",
        "version",
        "build",
        "env",
        "limits",
        "scaling",
        "logs",
        "http",
        "secrets",
    ];

    /// Parses glint.toml; a value of the wrong type names its key (`env.A`), besides
    /// the line and column TOML gives.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let shown = |e: &dyn std::fmt::Display| e.to_string().trim_end().to_string();
        let document = toml::Deserializer::parse(text).map_err(|e| ManifestError(shown(&e)))?;
        serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            let inner = shown(e.inner());
            if path == "." || inner.contains(&format!("`{path}`")) {
                ManifestError(inner)
            } else {
                ManifestError(format!("`{path}`: {inner}"))
            }
        })
    }

    /// Validates the manifest for function `name` and fills in defaults.
    pub fn config(&self, name: &FunctionName) -> Result<FunctionConfig, ManifestError> {
        if let Some(declared) = &self.name
            && declared != name.as_str()
        {
            return Err(ManifestError(format!(
                "`name` is {declared:?} but the deploy is for function {:?}; make them match",
                name.as_str()
            )));
        }
        let route = self.route.clone().unwrap_or_else(|| format!("/{name}"));
        validate_route(&route)?;
        for key in self.env.keys() {
            if !is_env_name(key) {
                return Err(ManifestError(format!(
                    "`env.{key}` is not a valid variable name; use letters, digits and '_', not starting with a digit"
                )));
            }
        }
        for (i, secret) in self.secrets.iter().enumerate() {
            if !is_env_name(secret) {
                return Err(ManifestError(format!(
                    "`secrets` entry {secret:?} is not a valid name; use letters, digits and '_', not starting with a digit"
                )));
            }
            if self.env.contains_key(secret) {
                return Err(ManifestError(format!(
                    "`secrets` names {secret:?}, which `[env]` also sets; keep one of them"
                )));
            }
            if self.secrets[..i].contains(secret) {
                return Err(ManifestError(format!(
                    "`secrets` lists {secret:?} twice; list each secret once"
                )));
            }
        }
        let l = &self.limits;
        range_check("limits.memory_mb", l.memory_mb, 1, MAX_MEMORY_MB, "MiB")?;
        range_check("limits.timeout_ms", l.timeout_ms, 1, MAX_TIMEOUT_MS, "ms")?;
        range_check("limits.cpu_ms", l.cpu_ms, 10, MAX_TIMEOUT_MS, "ms")?;
        range_check(
            "limits.max_body_bytes",
            l.max_body_bytes,
            0,
            MAX_BODY_BYTES,
            "bytes",
        )?;
        let defaults = Limits::default();
        let limits = Limits {
            memory_mb: l.memory_mb.unwrap_or(defaults.memory_mb),
            timeout_ms: l.timeout_ms.unwrap_or(defaults.timeout_ms),
            cpu_ms: l.cpu_ms.unwrap_or(defaults.cpu_ms),
            max_body_bytes: l.max_body_bytes.unwrap_or(defaults.max_body_bytes),
        };
        let s = &self.scaling;
        range_check(
            "scaling.max_concurrency",
            s.max_concurrency.map(u64::from),
            1,
            MAX_CONCURRENCY as u64,
            "requests",
        )?;
        range_check(
            "scaling.min_instances",
            s.min_instances.map(u64::from),
            0,
            1000,
            "instances",
        )?;
        range_check("scaling.max_queue_ms", s.max_queue_ms, 0, 60_000, "ms")?;
        range_check(
            "scaling.reuse_max_requests",
            s.reuse_max_requests.map(u64::from),
            1,
            1_000_000,
            "requests",
        )?;
        range_check(
            "scaling.reuse_max_seconds",
            s.reuse_max_seconds,
            1,
            86_400,
            "seconds",
        )?;
        range_check(
            "scaling.max_concurrent_per_instance",
            s.max_concurrent_per_instance.map(u64::from),
            1,
            MAX_CONCURRENCY as u64,
            "requests",
        )?;
        if s.reuse != Some(true)
            && (s.reuse_max_requests.is_some()
                || s.reuse_max_seconds.is_some()
                || s.max_concurrent_per_instance.is_some_and(|n| n > 1))
        {
            return Err(ManifestError(
                "`scaling.reuse_max_requests`, `scaling.reuse_max_seconds` and `scaling.max_concurrent_per_instance` apply only to reused instances; add `reuse = true` under [scaling] or remove them".into(),
            ));
        }
        let scaling_defaults = Scaling::default();
        let scaling = Scaling {
            min_instances: s.min_instances.unwrap_or(scaling_defaults.min_instances),
            max_concurrency: s
                .max_concurrency
                .unwrap_or(scaling_defaults.max_concurrency),
            max_queue_ms: s.max_queue_ms.unwrap_or(scaling_defaults.max_queue_ms),
            reuse: s.reuse.unwrap_or(scaling_defaults.reuse),
            reuse_max_requests: s
                .reuse_max_requests
                .unwrap_or(scaling_defaults.reuse_max_requests),
            reuse_max_seconds: s
                .reuse_max_seconds
                .unwrap_or(scaling_defaults.reuse_max_seconds),
            max_concurrent_per_instance: s
                .max_concurrent_per_instance
                .unwrap_or(scaling_defaults.max_concurrent_per_instance),
        };
        let log_level = match &self.logs.level {
            None => Level::Info,
            Some(text) => text.parse().map_err(|_| {
                ManifestError(format!(
                    "`logs.level` {text:?} is invalid; use trace, debug, info, warn or error"
                ))
            })?,
        };
        let http_style = match self.http.style.as_deref() {
            None | Some("glint") => HttpStyle::Glint,
            Some("spin") => HttpStyle::Spin,
            Some(other) => {
                return Err(ManifestError(format!(
                    "`http.style` {other:?} is invalid; use \"glint\" (the guest sees the path after its route) or \"spin\" (the whole path and Spin's spin-* headers)"
                )));
            }
        };
        Ok(FunctionConfig {
            route,
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            limits,
            scaling,
            log_level,
            http_style,
            secrets: self.secrets.clone(),
            sections: self.sections.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> FunctionName {
        "hello".parse().unwrap()
    }

    #[test]
    fn defaults_fill_an_empty_manifest() {
        let c = Manifest::parse("").unwrap().config(&name()).unwrap();
        assert_eq!(c.route, "/hello");
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Manifest::parse("[limits]\nmemroy_mb = 3\n").unwrap_err();
        assert!(e.to_string().contains("memroy_mb"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let m = Manifest::parse("[limits]\nmemory_mb = 0\n").unwrap();
        let e = m.config(&name()).unwrap_err();
        assert!(e.to_string().contains("limits.memory_mb"), "{e}");
        let m = Manifest::parse("route = \"/a/../b\"\n").unwrap();
        assert!(m.config(&name()).unwrap_err().to_string().contains("route"));
        let m = Manifest::parse("name = \"other\"\n").unwrap();
        assert!(m.config(&name()).unwrap_err().to_string().contains("name"));
    }

    #[test]
    fn secrets_and_scaling_are_checked() {
        let ok = Manifest::parse("secrets = [\"API_TOKEN\"]\n")
            .unwrap()
            .config(&name())
            .unwrap();
        assert_eq!(ok.secrets, ["API_TOKEN"]);
        for (text, key) in [
            ("secrets = [\"1X\"]\n", "secrets"),
            ("secrets = [\"X\"]\n[env]\nX = \"1\"\n", "[env]"),
            ("[scaling]\nreuse_max_requests = 5\n", "reuse = true"),
            (
                "[scaling]\nreuse = true\nreuse_max_seconds = 0\n",
                "reuse_max_seconds",
            ),
        ] {
            let e = Manifest::parse(text).and_then(|m| m.config(&name()));
            let e = e.unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn the_http_style_is_checked() {
        let style = |text: &str| Manifest::parse(text).and_then(|m| m.config(&name()));
        assert_eq!(style("").unwrap().http_style, HttpStyle::Glint);
        assert_eq!(
            style("[http]\nstyle = \"spin\"\n").unwrap().http_style,
            HttpStyle::Spin
        );
        let e = style("[http]\nstyle = \"lambda\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`http.style`") && e.contains("\"spin\""), "{e}");
        let e = style("[http]\nstlye = \"spin\"\n").unwrap_err().to_string();
        assert!(e.contains("stlye"), "{e}");
    }

    #[test]
    fn sections_are_kept_for_their_capabilities_and_name_their_keys() {
        let config = Manifest::parse("[kv]\nstores = [\"a\"]\n")
            .unwrap()
            .config(&name())
            .unwrap();
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Kv {
            #[allow(dead_code)]
            stores: Vec<u32>,
        }
        let e = config.section::<Kv>("kv").unwrap_err().to_string();
        assert!(e.contains("`kv.stores[0]`"), "{e}");
        assert!(config.section::<Kv>("outbound").unwrap().is_none());
    }
}
