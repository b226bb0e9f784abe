//! Outbound HTTP (`wasi:http/outgoing-handler`), checked against the manifest's
//! `[outbound]` allow-list.
//!
//! [`Outbound`] links `wasi:http/outgoing-handler` once (the engine links the rest of
//! `wasi:http`); [`OutboundRules::from_manifest`] checks `[outbound]` at deploy and names
//! the bad key; an [`OutboundPolicy`] is built per instance and decides each call.
//!
//! - `allowed_hosts` holds `scheme://host[:port]` entries; `*` may stand for the scheme,
//!   the port, the whole host or its leading labels (`https://*.example.com`). No entry
//!   means no outbound access.
//! - `allowed_methods` limits the methods (all when absent).
//! - Loopback, private, link-local and unspecified addresses, and names that resolve to
//!   them, are reached only through an entry that names that host exactly: wildcards never
//!   open them (SSRF protection).
//! - Each invocation may make at most `max_requests` calls, each bounded by `timeout_ms`.
//! - A name is resolved once and the connection goes to an address that was checked
//!   ([`dial`]), so DNS rebinding cannot reach what the check refused.

mod dial;

pub use dial::NameResolver;
use dial::SendResult;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use glint_store::Level;
use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttp, WasiHttpCtxView, WasiHttpHooks,
};

use super::{Capability, Grant, InstanceSetup, InstanceState, VersionContext};
use crate::guest::GuestState;
use crate::log::{LogSink, LogStream};
use crate::manifest::{FunctionConfig, ManifestError};
use crate::usage::Usage;

/// The manifest key of this capability.
const SECTION: &str = "outbound";

/// Outbound HTTP for guests, with the node's name resolver.
pub struct Outbound {
    resolver: NameResolver,
}

impl Outbound {
    /// `dns_servers` empty uses the system's resolver configuration.
    pub fn new(dns_servers: &[std::net::SocketAddr]) -> anyhow::Result<Self> {
        Ok(Self {
            resolver: NameResolver::new(dns_servers)?,
        })
    }
}

impl Capability for Outbound {
    fn name(&self) -> &'static str {
        SECTION
    }

    fn section(&self) -> Option<&'static str> {
        Some(SECTION)
    }

    /// WASI 0.2's outgoing handler and WASI 0.3's client, both sending through the
    /// instance's policy.
    fn link(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
        use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
        use wasmtime_wasi_http::p3::bindings::http::client;
        outgoing_handler::add_to_linker::<GuestState, WasiHttp>(linker, outbound_view)?;
        client::add_to_linker::<GuestState, WasiHttp>(linker, outbound_view)
    }

    fn check(&self, config: &FunctionConfig) -> Result<(), ManifestError> {
        OutboundRules::of(config).map(drop)
    }

    fn prepare(&self, version: &VersionContext<'_>) -> Result<Grant, ManifestError> {
        Ok(Arc::new(OutboundRules::of(version.config)?))
    }

    fn instantiate(&self, grant: &Grant, setup: &mut InstanceSetup<'_>) -> Box<dyn InstanceState> {
        // A grant of another type cannot happen; were it to, nothing is allowed out.
        let rules = grant
            .clone()
            .downcast::<OutboundRules>()
            .unwrap_or_default();
        Box::new(OutboundPolicy::new(
            rules,
            self.resolver.clone(),
            setup.log.clone(),
        ))
    }
}

/// `wasi:http` as the outgoing handler sees it: the instance's HTTP context, with this
/// instance's policy as the hooks that send.
fn outbound_view(state: &mut GuestState) -> WasiHttpCtxView<'_> {
    let parts = state.capability::<OutboundPolicy>();
    WasiHttpCtxView {
        ctx: parts.http,
        table: parts.table,
        hooks: parts.state,
    }
}

impl InstanceState for OutboundPolicy {
    fn restart(&mut self, log: &Arc<dyn LogSink>) {
        self.made = 0;
        self.denied = 0;
        self.log = log.clone();
    }

    fn report(&self, usage: &mut Usage) {
        usage.outbound_allowed = self.made;
        usage.outbound_denied = self.denied;
    }
}

/// `[outbound]` as written in glint.toml.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutboundSection {
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    pub allowed_methods: Option<Vec<String>>,
    pub max_requests: Option<u32>,
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
enum Pattern {
    Any,
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com`.
    Suffix(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    text: String,
    scheme: Pattern,
    host: Pattern,
    /// `None` is any port.
    port: Option<u16>,
}

/// The checked allow-list of one version.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRules {
    rules: Vec<Rule>,
    methods: Option<Vec<String>>,
    pub max_requests: u32,
    pub timeout: Duration,
}

impl Default for OutboundRules {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            methods: None,
            max_requests: 10,
            timeout: Duration::from_secs(10),
        }
    }
}

fn parse_rule(text: &str, key: &str) -> Result<Rule, ManifestError> {
    let bad = |why: &str| {
        ManifestError(format!(
            "`{key}` {text:?} is invalid: {why}; write scheme://host[:port], e.g. \"https://api.example.com\" or \"https://*.example.com:8443\""
        ))
    };
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| bad("it has no scheme://"))?;
    let scheme = match scheme {
        "*" => Pattern::Any,
        "http" | "https" => Pattern::Exact(scheme.to_string()),
        _ => return Err(bad("the scheme must be http, https or *")),
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(bad(
            "only scheme, host and port belong here, not a path or user",
        ));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        // [::1]:8080
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("junk after the IPv6 address"))?,
                ),
            ),
            None => return Err(bad("an IPv6 address needs its closing ]")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None | Some("*") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| bad("the port must be a number or *"))?,
        ),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host = if host == "*" {
        Pattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return Err(bad("a wildcard may only stand first, as in *.example.com"));
        }
        Pattern::Suffix(format!(".{suffix}"))
    } else if host.is_empty() || host.contains('*') {
        return Err(bad("the host is empty or has a wildcard in the middle"));
    } else {
        Pattern::Exact(host)
    };
    Ok(Rule {
        text: text.to_string(),
        scheme,
        host,
        port,
    })
}

impl OutboundRules {
    /// The allow-list of a manifest, checked; none without an `[outbound]`.
    pub fn of(config: &FunctionConfig) -> Result<Self, ManifestError> {
        Self::from_manifest(config.section::<OutboundSection>(SECTION)?.as_ref())
    }

    /// Checks `[outbound]`; each error names its key.
    pub fn from_manifest(section: Option<&OutboundSection>) -> Result<Self, ManifestError> {
        let Some(section) = section else {
            return Ok(Self::default());
        };
        let rules = section
            .allowed_hosts
            .iter()
            .enumerate()
            .map(|(i, text)| parse_rule(text, &format!("outbound.allowed_hosts[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let methods = match &section.allowed_methods {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for (i, m) in list.iter().enumerate() {
                    let upper = m.to_ascii_uppercase();
                    if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
                        return Err(ManifestError(format!(
                            "`outbound.allowed_methods[{i}]` {m:?} is not an HTTP method; use GET, POST, ..."
                        )));
                    }
                    out.push(upper);
                }
                Some(out)
            }
        };
        let defaults = Self::default();
        if let Some(n) = section.max_requests
            && !(1..=1000).contains(&n)
        {
            return Err(ManifestError(format!(
                "`outbound.max_requests` must be between 1 and 1000, got {n}"
            )));
        }
        if let Some(ms) = section.timeout_ms
            && !(1..=300_000).contains(&ms)
        {
            return Err(ManifestError(format!(
                "`outbound.timeout_ms` must be between 1 and 300000, got {ms}"
            )));
        }
        Ok(Self {
            rules,
            methods,
            max_requests: section.max_requests.unwrap_or(defaults.max_requests),
            timeout: section
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.timeout),
        })
    }

    /// The rule that allows `scheme://host:port`, if any. Internal addresses need a rule
    /// that names the host exactly.
    pub(crate) fn allows(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        internal: bool,
    ) -> Option<&Rule> {
        self.rules.iter().find(|r| {
            let scheme_ok = match &r.scheme {
                Pattern::Any => true,
                Pattern::Exact(s) => s == scheme,
                Pattern::Suffix(_) => false,
            };
            let host_ok = match &r.host {
                Pattern::Any => !internal,
                Pattern::Suffix(s) => !internal && host.ends_with(s.as_str()),
                Pattern::Exact(h) => h == host,
            };
            let port_ok = match r.port {
                None => !internal || r.host != Pattern::Any,
                Some(p) => p == port,
            };
            scheme_ok && host_ok && port_ok
        })
    }

    pub(crate) fn method_allowed(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == method))
    }
}

/// Addresses a guest must not reach through a wildcard: loopback, private, link-local,
/// shared (CGNAT), reserved, documentation-free special ranges and multicast, also when
/// written inside IPv6 (IPv4-mapped, IPv4-compatible, NAT64 and 6to4).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            a == 0 // 0.0.0.0/8, "this network"
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 100 && (b & 0xc0) == 64 // shared address space 100.64.0.0/10
                || a == 192 && b == 0 && c == 0 // IETF protocol assignments 192.0.0.0/24
                || a == 198 && (b & 0xfe) == 18 // benchmarking 198.18.0.0/15
                || a >= 240 // reserved 240.0.0.0/4
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ))
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks).
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return is_internal(embedded(s[6], s[7]));
            }
            // NAT64 64:ff9b::/96 and 6to4 2002::/16 reach the IPv4 address they embed.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return true;
            }
            if s[0] == 0x2002 {
                return true;
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        }
    }
}

/// One request's outbound state: the rules, the calls made so far, and the log.
pub struct OutboundPolicy {
    rules: Arc<OutboundRules>,
    resolver: NameResolver,
    made: u32,
    denied: u32,
    log: Arc<dyn LogSink>,
}

impl OutboundPolicy {
    pub fn new(rules: Arc<OutboundRules>, resolver: NameResolver, log: Arc<dyn LogSink>) -> Self {
        Self {
            rules,
            resolver,
            made: 0,
            denied: 0,
            log,
        }
    }

    fn deny(
        &mut self,
        why: String,
    ) -> Box<dyn Future<Output = Result<SendResult, HttpError>> + Send> {
        self.denied += 1;
        self.log.line(LogStream::Host, Level::Warn, why);
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<SendResult, HttpError>> + Send> {
        let method = request.method().as_str().to_string();
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let origin = format!("{scheme}://{host}:{port}");
        if self.rules.rules.is_empty() {
            return self.deny(format!(
                "outbound request {method} {uri} denied: the function has no [outbound] allowed_hosts; add \"{scheme}://{host}\" to allow it"
            ));
        }
        if !self.rules.method_allowed(&method) {
            return self.deny(format!(
                "outbound request {method} {uri} denied: {method} is not in [outbound] allowed_methods"
            ));
        }
        if self.made >= self.rules.max_requests {
            return self.deny(format!(
                "outbound request {method} {uri} denied: this invocation already made {} outbound requests, the most [outbound] max_requests allows",
                self.rules.max_requests
            ));
        }
        let literal_internal = host
            .parse::<IpAddr>()
            .map(is_internal)
            .unwrap_or(host == "localhost");
        if self
            .rules
            .allows(&scheme, &host, port, literal_internal)
            .is_none()
        {
            let hint = if literal_internal {
                format!(
                    "{origin} is an internal address: only an entry naming it exactly, \"{origin}\", allows it"
                )
            } else {
                format!("add \"{origin}\" to [outbound] allowed_hosts")
            };
            return self.deny(format!("outbound request {method} {uri} denied: {hint}"));
        }
        self.made += 1;
        let rules = self.rules.clone();
        let log = self.log.clone();
        let timeout = rules.timeout;
        let options = RequestOptions {
            connect_timeout: Some(
                options
                    .and_then(|o| o.connect_timeout)
                    .unwrap_or(timeout)
                    .min(timeout),
            ),
            first_byte_timeout: Some(
                options
                    .and_then(|o| o.first_byte_timeout)
                    .unwrap_or(timeout)
                    .min(timeout),
            ),
            between_bytes_timeout: Some(
                options
                    .and_then(|o| o.between_bytes_timeout)
                    .unwrap_or(timeout)
                    .min(timeout),
            ),
        };
        let resolver = self.resolver.clone();
        Box::new(async move {
            // Resolved once: the addresses checked here are the ones dialled.
            let addrs = resolver.lookup(&host, port).await?;
            let internal = addrs.iter().any(|a| is_internal(a.ip()));
            if internal && rules.allows(&scheme, &host, port, true).is_none() {
                log.line(
                    LogStream::Host,
                    Level::Warn,
                    format!("outbound request {method} {uri} denied: {host} resolves to an internal address; only an entry naming \"{origin}\" exactly allows it"),
                );
                return Err(HttpError::HttpRequestDenied);
            }
            dial::send(request, addrs, host, scheme == "https", options).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hosts: &[&str]) -> OutboundRules {
        let section = OutboundSection {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        OutboundRules::from_manifest(Some(&section)).unwrap()
    }

    #[test]
    fn wildcards_match_public_hosts_only() {
        let r = rules(&["https://*.example.com", "http://api.test:8080", "*://*:*"]);
        assert!(r.allows("https", "a.example.com", 443, false).is_some());
        assert!(r.allows("http", "api.test", 8080, false).is_some());
        assert!(r.allows("http", "anything.org", 81, false).is_some());
        assert!(
            r.allows("http", "127.0.0.1", 80, true).is_none(),
            "a wildcard must not open loopback"
        );
        let exact = rules(&["http://127.0.0.1:9000"]);
        assert!(exact.allows("http", "127.0.0.1", 9000, true).is_some());
        assert!(exact.allows("http", "127.0.0.1", 9001, true).is_none());
        assert!(exact.allows("https", "127.0.0.1", 9000, true).is_none());
    }

    #[test]
    fn bad_entries_name_their_key() {
        for bad in [
            "example.com",
            "ftp://x",
            "https://a.*.com",
            "https://x/path",
            "https://x:port",
        ] {
            let section = OutboundSection {
                allowed_hosts: vec![bad.into()],
                ..Default::default()
            };
            let e = OutboundRules::from_manifest(Some(&section)).unwrap_err();
            assert!(
                e.to_string().contains("outbound.allowed_hosts[0]"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "0.1.2.3",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.251",
            "239.1.2.3",
            "ff02::1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "2002:7f00:1::",
            "2002:808:808::",
            "fc00::1",
            "fdff::1",
            "febf::1",
            "::ffff:10.0.0.1",
            "::ffff:100.64.0.1",
            "::ffff:198.18.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "::0.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "2001:4860::8888",
            "100.128.0.1",
            "100.63.255.255",
            "192.0.1.1",
            "198.20.0.1",
            "198.17.255.255",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "2606:4700::1111",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
