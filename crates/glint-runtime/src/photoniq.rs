//! PhotonIQ FaaS manifests (`photoniq.toml`): their keys turned into a [`Manifest`], so a
//! PhotonIQ function deploys on Glint unchanged.

use serde::Deserialize;

use crate::capabilities::outbound::OutboundSection;
use crate::manifest::{Manifest, ManifestError};

/// A PhotonIQ FaaS manifest, as its CLI writes it.
#[derive(Debug, Default, Deserialize)]
struct PhotonIq {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    lang: Option<String>,
    execute_url_suffix: Option<String>,
    #[serde(default)]
    cors_settings: Option<PhotonIqCors>,
    #[serde(default)]
    log_settings: Option<PhotonIqLogs>,
    #[serde(default)]
    env_vars: std::collections::BTreeMap<String, String>,
}

/// PhotonIQ's allow-list for a function's outbound calls.
#[derive(Debug, Default, Deserialize)]
struct PhotonIqCors {
    #[serde(default)]
    allowed_methods: Vec<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    allow_http: bool,
}

#[derive(Debug, Default, Deserialize)]
struct PhotonIqLogs {
    enabled: Option<bool>,
    level: Option<String>,
}

/// The Glint manifest for a `photoniq.toml`'s text.
pub fn to_manifest(text: &str) -> Result<Manifest, ManifestError> {
    let p: PhotonIq =
        toml::from_str(text).map_err(|e| ManifestError(e.to_string().trim_end().to_string()))?;
    let mut manifest = Manifest {
        name: p.name.clone(),
        description: p.description,
        lang: p.lang,
        version: p.version,
        env: p.env_vars,
        ..Manifest::default()
    };
    if let (Some(suffix), Some(name)) = (&p.execute_url_suffix, &p.name) {
        // PhotonIQ serves such a function at <suffix>/<name>.
        manifest.route = Some(format!("/{}/{name}", suffix.trim_matches('/')));
    }
    if let Some(logs) = p.log_settings {
        manifest.logs.level = match (logs.enabled, logs.level) {
            (Some(false), _) => Some("error".into()),
            (_, Some(level)) => Some(level.to_ascii_lowercase()),
            _ => None,
        };
    }
    if let Some(cors) = p.cors_settings {
        // PhotonIQ lists bare host names, HTTPS unless `allow_http`.
        let mut hosts = Vec::new();
        for host in &cors.allowed_hosts {
            if host.contains("://") {
                hosts.push(host.clone());
                continue;
            }
            hosts.push(format!("https://{host}"));
            if cors.allow_http {
                hosts.push(format!("http://{host}"));
            }
        }
        let outbound = OutboundSection {
            allowed_hosts: hosts,
            allowed_methods: (!cors.allowed_methods.is_empty()).then_some(cors.allowed_methods),
            ..Default::default()
        };
        let section = toml::Value::try_from(outbound)
            .map_err(|e| ManifestError(format!("`cors_settings`: {e}")))?;
        manifest.sections.insert("outbound".into(), section);
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::outbound::OutboundRules;

    #[test]
    fn cors_settings_become_an_outbound_section_that_survives_the_trip_as_text() {
        let manifest = to_manifest(
            "name = \"fn1\"\n[cors_settings]\nallowed_hosts = [\"api.example.com\"]\nallow_http = true\nallowed_methods = [\"GET\"]\n",
        )
        .unwrap();
        // The CLI sends the manifest as glint.toml text.
        let text = toml::to_string(&manifest).unwrap();
        let config = Manifest::parse(&text)
            .unwrap()
            .config(&"fn1".parse().unwrap())
            .unwrap();
        let rules = OutboundRules::of(&config).unwrap();
        assert!(
            rules
                .allows("https", "api.example.com", 443, false)
                .is_some(),
            "{text}"
        );
        assert!(
            rules.allows("http", "api.example.com", 80, false).is_some(),
            "{text}"
        );
        assert!(
            rules
                .allows("https", "other.example.com", 443, false)
                .is_none()
        );
        assert!(!rules.method_allowed("POST"), "{text}");
    }
}
