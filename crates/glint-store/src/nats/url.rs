//! `nats://HOST:PORT[,HOST:PORT...][?ns=NAME&replicas=N]` (`tls://` requires TLS), and how
//! a node authenticates to those servers. Credentials never come from the URL, so the URL
//! can be logged and shown.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Result, StoreError};

/// Where the NATS servers are, and how to reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsUrl {
    /// `host:port` of each server given; the client learns the rest of the cluster.
    pub servers: Vec<String>,
    /// `tls://`: refuse a server that does not speak TLS.
    pub tls: bool,
    /// Prefixes every bucket, stream and subject, so deployments can share one NATS.
    pub ns: String,
    /// Copies of every bucket and stream; by default 3 where the cluster has three
    /// servers or more, else 1.
    pub replicas: Option<usize>,
    pub auth: NatsAuth,
}

/// How a node authenticates to NATS and checks its TLS certificate: set from
/// `glint serve`'s flags, never from the URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// A `.creds` file (a user JWT and its nkey seed).
    pub creds: Option<PathBuf>,
    pub token: Option<String>,
    /// A CA certificate (PEM) to verify the servers with, beside the system's roots.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients.
    pub cert: Option<(PathBuf, PathBuf)>,
}

fn invalid(url: &str, what: &str) -> StoreError {
    StoreError::Invalid(format!(
        "store URL '{url}': {what}; use nats://HOST:PORT[,HOST:PORT...][?ns=NAME&replicas=N], \
         e.g. nats://10.0.0.1:4222,10.0.0.2:4222"
    ))
}

impl NatsUrl {
    /// Parses `nats://...` or `tls://...`; `None` if `url` has neither scheme.
    pub fn parse(url: &str) -> Option<Result<NatsUrl>> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("nats://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("tls://") {
            (true, rest)
        } else {
            return None;
        };
        Some(Self::parse_rest(url, tls, rest))
    }

    fn parse_rest(url: &str, tls: bool, rest: &str) -> Result<NatsUrl> {
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        if hosts.contains('@') {
            return Err(invalid(
                url,
                "credentials do not go in the URL; pass --nats-creds FILE or --nats-token (GLINT_NATS_TOKEN)",
            ));
        }
        let mut servers = Vec::new();
        for host in hosts.split(',') {
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(invalid(url, &format!("'{host}' has no port")));
            };
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(invalid(url, &format!("'{host}' is not HOST:PORT")));
            }
            servers.push(host.to_string());
        }
        let mut out = NatsUrl {
            servers,
            tls,
            ns: "glint".into(),
            replicas: None,
            auth: NatsAuth::default(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("ns", ns))
                    if !ns.is_empty()
                        && ns.len() <= 32
                        && ns.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    out.ns = ns.to_string()
                }
                Some(("ns", _)) => {
                    return Err(invalid(url, "ns must be 1 to 32 letters, digits or '_'"));
                }
                Some(("replicas", n)) => match n.parse::<usize>() {
                    Ok(n @ 1..=5) => out.replicas = Some(n),
                    _ => return Err(invalid(url, "replicas must be a number from 1 to 5")),
                },
                _ => return Err(invalid(url, &format!("unknown option '{pair}'"))),
            }
        }
        Ok(out)
    }

    /// How many copies of each bucket and stream to keep, given the cluster `client` is
    /// connected to.
    pub(crate) fn replicas(&self, client: &async_nats::Client) -> usize {
        self.replicas.unwrap_or_else(|| {
            // The servers' client URLs, this one's included, as the server tells them.
            let known = client
                .server_info()
                .connect_urls
                .len()
                .max(self.servers.len());
            if known >= 3 { 3 } else { 1 }
        })
    }

    /// Connects, with the credentials and TLS settings of [`NatsAuth`]. Reconnects
    /// forever after that: a node that loses NATS keeps serving what it has.
    pub(crate) async fn connect(&self) -> Result<async_nats::Client> {
        let fail = |e: &dyn fmt::Display| {
            StoreError::Backend(format!("cannot connect to NATS at {self}: {e}"))
        };
        let mut options = match &self.auth.creds {
            Some(file) => async_nats::ConnectOptions::with_credentials_file(file.clone())
                .await
                .map_err(|e| {
                    StoreError::Invalid(format!(
                        "cannot read the NATS credentials file {}: {e}",
                        file.display()
                    ))
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(token) = &self.auth.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &self.auth.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.auth.cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let scheme = if self.tls { "tls" } else { "nats" };
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{scheme}://{s}"))
            .collect();
        options
            .name("glint")
            .require_tls(self.tls)
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .connect(servers)
            .await
            .map_err(|e| {
                use async_nats::ConnectErrorKind as Kind;
                let hint = match e.kind() {
                    Kind::AuthorizationViolation | Kind::Authentication => {
                        "; NATS refused this node's credentials: check --nats-token (GLINT_NATS_TOKEN) or --nats-creds"
                    }
                    Kind::Tls => TLS_HINT,
                    // A certificate it cannot verify comes back as an I/O error.
                    Kind::Io if e.to_string().contains("certificate") => TLS_HINT,
                    _ => "",
                };
                fail(&format!("{e}{hint}"))
            })
    }
}

/// What to check when TLS with NATS fails.
const TLS_HINT: &str = "; check that the servers speak TLS, and pass --nats-ca with the CA that signed their certificates (and --nats-cert/--nats-key if they verify clients)";

impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "tls" } else { "nats" };
        write!(f, "{scheme}://{}?ns={}", self.servers.join(","), self.ns)?;
        if let Some(n) = self.replicas {
            write!(f, "&replicas={n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_name_servers_and_options() {
        let url = NatsUrl::parse("nats://a:4222,b:4223?ns=t1&replicas=3")
            .unwrap()
            .unwrap();
        assert_eq!(url.servers, ["a:4222", "b:4223"]);
        assert_eq!(
            (url.ns.as_str(), url.replicas, url.tls),
            ("t1", Some(3), false)
        );
        assert_eq!(url.to_string(), "nats://a:4222,b:4223?ns=t1&replicas=3");
        let url = NatsUrl::parse("tls://a:4222").unwrap().unwrap();
        assert_eq!((url.ns.as_str(), url.tls), ("glint", true));
        assert!(NatsUrl::parse("sqlite:x").is_none());
        for (bad, says) in [
            ("nats://a", "has no port"),
            ("nats://a:x", "not HOST:PORT"),
            ("nats://u:p@a:4222", "--nats-creds"),
            ("nats://a:1?ns=a.b", "ns must be"),
            ("nats://a:1?replicas=0", "replicas must be"),
            ("nats://a:1?x=1", "unknown option 'x=1'"),
        ] {
            let err = NatsUrl::parse(bad).unwrap().unwrap_err().to_string();
            assert!(
                err.contains(says) && err.contains("nats://HOST:PORT"),
                "{bad}: {err}"
            );
        }
    }
}
