//! The in-memory route table the data plane reads on every request, with no I/O.
//!
//! The table is rebuilt from the store whenever a function changes and swapped in whole
//! (`ArcSwap`), so readers never lock. Versions keep their compiled component and their
//! concurrency limit across rebuilds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use glint_runtime::{Compiled, FunctionConfig, Grants, InstancePool};
use glint_store::{AliasName, FunctionName, TenantId, VersionId};

use crate::logs::LogContext;
use tokio::sync::{OnceCell, Semaphore};

/// A version's compiled component in memory, loaded on first use and dropped again when
/// the version sits idle long enough (unless `min_instances` pins it).
#[derive(Default)]
pub struct CompiledCell {
    cell: ArcSwap<OnceCell<Compiled>>,
    /// When a request last used it, in milliseconds of the node's clock
    /// ([`crate::Node::clock`]).
    last_used: AtomicU64,
}

impl CompiledCell {
    /// The cell to load into or read from. A request holds its own `Arc`, so an eviction
    /// meanwhile only drops the node's reference; the request's code stays alive.
    pub fn current(&self) -> Arc<OnceCell<Compiled>> {
        self.cell.load_full()
    }

    /// The compiled component, if it is in memory now.
    pub fn get(&self) -> Option<Compiled> {
        self.cell.load().get().cloned()
    }

    pub fn initialized(&self) -> bool {
        self.cell.load().initialized()
    }

    /// Notes a use. A store only when the millisecond changed, so busy versions do not
    /// bounce the cache line between cores on every request.
    pub fn touch(&self, now: u64) {
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }

    pub fn idle_for(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_used.load(Ordering::Relaxed))
    }

    /// Drops the in-memory code; the next request loads it from the compile cache.
    /// Says whether there was anything to drop.
    pub fn evict(&self) -> bool {
        if !self.initialized() {
            return false;
        }
        self.cell.store(Arc::new(OnceCell::new()));
        true
    }
}

/// One deployed version as the data plane needs it.
pub struct VersionSlot {
    pub version: VersionId,
    pub sha256: String,
    pub config: FunctionConfig,
    /// What its instances may use, by capability: env and secrets, KV stores, outbound.
    pub grants: Arc<Grants>,
    /// The environment its instances start with (manifest, API env, secrets). A rebuild
    /// that leaves it and the config as they were keeps the version's idle instances.
    pub env: Vec<(String, String)>,
    /// Loaded on first use (or at deploy and start-up for aliased versions).
    pub compiled: Arc<CompiledCell>,
    pub concurrency: Arc<Semaphore>,
    /// Idle instances kept for the next request, when `[scaling] reuse = true`. Each
    /// version has its own: never shared across versions, functions or tenants, and
    /// never carried past a change of its config, env or secrets.
    pub pool: Option<Arc<InstancePool>>,
    /// Where its invocations' lines and usage go.
    pub log_context: Arc<LogContext>,
    /// Usage and metrics of this version on this node.
    pub meter: Arc<crate::usage::VersionMeter>,
}

/// An alias: versions with cumulative weights, for a weighted pick.
pub struct Alias {
    targets: Vec<(f64, Arc<VersionSlot>)>,
}

impl Alias {
    pub fn new(weighted: Vec<(f64, Arc<VersionSlot>)>) -> Option<Self> {
        let total: f64 = weighted.iter().map(|(w, _)| w).sum();
        if weighted.is_empty() || total <= 0.0 {
            return None;
        }
        let mut acc = 0.0;
        let targets = weighted
            .into_iter()
            .map(|(w, slot)| {
                acc += w / total;
                (acc, slot)
            })
            .collect();
        Some(Self { targets })
    }

    /// The versions the alias points to.
    pub fn slots(&self) -> impl Iterator<Item = &Arc<VersionSlot>> {
        self.targets.iter().map(|(_, slot)| slot)
    }

    /// Picks a version with probability proportional to its weight.
    pub fn pick(&self) -> &Arc<VersionSlot> {
        if self.targets.len() == 1 {
            return &self.targets[0].1;
        }
        let x = fastrand::f64();
        self.targets
            .iter()
            .find(|(cumulative, _)| x < *cumulative)
            .map(|(_, slot)| slot)
            .unwrap_or(&self.targets[self.targets.len() - 1].1)
    }
}

pub struct FunctionEntry {
    pub tenant: TenantId,
    pub name: FunctionName,
    pub route: String,
    /// The route as the `x-forwarded-prefix` header its guests are sent.
    pub route_header: Option<http::HeaderValue>,
    pub aliases: HashMap<AliasName, Alias>,
    pub versions: HashMap<VersionId, Arc<VersionSlot>>,
}

impl FunctionEntry {
    pub fn new(
        tenant: TenantId,
        name: FunctionName,
        route: String,
        aliases: HashMap<AliasName, Alias>,
        versions: HashMap<VersionId, Arc<VersionSlot>>,
    ) -> Self {
        Self {
            route_header: http::HeaderValue::from_str(&route).ok(),
            tenant,
            name,
            route,
            aliases,
            versions,
        }
    }

    /// Its versions with compiled code in memory.
    pub fn loaded_versions(&self) -> usize {
        self.versions
            .values()
            .filter(|v| v.compiled.initialized())
            .count()
    }

    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, a)| a)
    }
}

#[derive(Default)]
pub struct RouteTable {
    /// Each tenant's functions by route: routes are unique within a tenant.
    by_route: HashMap<TenantId, HashMap<String, Arc<FunctionEntry>>>,
    by_name: HashMap<TenantId, HashMap<FunctionName, Arc<FunctionEntry>>>,
}

impl RouteTable {
    /// A function by tenant and name; takes `&str` so a lookup allocates nothing.
    pub fn function(&self, tenant: &str, name: &str) -> Option<&Arc<FunctionEntry>> {
        self.by_name.get(tenant)?.get(name)
    }

    pub fn functions(&self) -> impl Iterator<Item = &Arc<FunctionEntry>> {
        self.by_name.values().flat_map(|f| f.values())
    }

    /// A table of these functions.
    pub fn from_entries(entries: impl IntoIterator<Item = Arc<FunctionEntry>>) -> Self {
        let mut table = Self::default();
        for e in entries {
            table
                .by_route
                .entry(e.tenant.clone())
                .or_default()
                .insert(e.route.clone(), e.clone());
            table
                .by_name
                .entry(e.tenant.clone())
                .or_default()
                .insert(e.name.clone(), e);
        }
        table
    }

    /// A copy with one function replaced (or removed, with `None`).
    pub fn with(&self, key: (TenantId, FunctionName), entry: Option<Arc<FunctionEntry>>) -> Self {
        let (tenant, name) = key;
        let others = self
            .functions()
            .filter(|e| e.tenant != tenant || e.name != name)
            .cloned();
        Self::from_entries(others.chain(entry))
    }

    /// Versions with compiled code in memory, across all functions.
    pub fn loaded_versions(&self) -> usize {
        self.functions().map(|f| f.loaded_versions()).sum()
    }

    /// The tenant's longest route that is a whole-segment prefix of `path`, and the
    /// guest's path beneath it: `/hello/a/b?q` on route `/hello` gives `/a/b`.
    pub fn resolve<'p>(
        &self,
        tenant: &str,
        path: &'p str,
    ) -> Option<(&Arc<FunctionEntry>, &'p str)> {
        let routes = self.by_route.get(tenant)?;
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if candidate.len() > 1
                && let Some(entry) = routes.get(candidate)
            {
                return Some((entry, &path[end..]));
            }
            end = candidate.rfind('/')?;
            if end == 0 {
                return None;
            }
        }
    }
}

/// Where a request goes by its host, once the node has a `--base-domain`.
#[derive(Debug, PartialEq, Eq)]
pub enum HostTarget {
    /// `<function>.<tenant>.<base>`: that function, with the whole path.
    Function { tenant: String, name: String },
    /// `<tenant>.<base>`: the tenant's routes; any other host: `default`'s, borrowed,
    /// so a node without a base domain allocates nothing per request for it.
    Tenant(std::borrow::Cow<'static, str>),
}

/// The target of a request to `host` (a `Host` header or an `:authority`, with or
/// without a port, in any case). Without a base domain, every host is `default`'s.
pub fn host_target(host: Option<&str>, base_domain: Option<&str>) -> HostTarget {
    let default = || HostTarget::Tenant(glint_store::DEFAULT_TENANT.into());
    let (Some(host), Some(base)) = (host, base_domain) else {
        return default();
    };
    let host = match host.rsplit_once(':') {
        // Not an IPv6 literal's colons: `[::1]:8080` ends in `]` before its port.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some(sub) = host
        .strip_suffix(base)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return default();
    };
    match sub.split_once('.') {
        None if !sub.is_empty() => HostTarget::Tenant(sub.to_string().into()),
        Some((name, tenant)) if !name.is_empty() && !tenant.is_empty() && !tenant.contains('.') => {
            HostTarget::Function {
                tenant: tenant.to_string(),
                name: name.to_string(),
            }
        }
        _ => default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glint_store::DEFAULT_TENANT;

    #[test]
    fn hosts_under_the_base_domain_name_a_tenant_or_a_function() {
        let target = |host| host_target(Some(host), Some("fn.example.com"));
        let function = |name: &str, tenant: &str| HostTarget::Function {
            tenant: tenant.into(),
            name: name.into(),
        };
        let tenant = |t: &str| HostTarget::Tenant(t.to_string().into());
        assert_eq!(
            target("hello.acme.fn.example.com"),
            function("hello", "acme")
        );
        assert_eq!(
            target("Hello.ACME.fn.example.com:8080"),
            function("hello", "acme")
        );
        assert_eq!(
            target("hello.acme.fn.example.com."),
            function("hello", "acme")
        );
        assert_eq!(target("acme.fn.example.com"), tenant("acme"));
        for other in [
            "fn.example.com",
            "example.com",
            "x.y.acme.fn.example.com",
            "acmefn.example.com",
            "127.0.0.1:8080",
            "[::1]:8080",
            ".fn.example.com",
        ] {
            assert_eq!(target(other), tenant(DEFAULT_TENANT), "{other}");
        }
        assert_eq!(
            host_target(Some("hello.acme.fn.example.com"), None),
            tenant(DEFAULT_TENANT)
        );
        assert_eq!(
            host_target(None, Some("fn.example.com")),
            tenant(DEFAULT_TENANT)
        );
    }

    fn entry(route: &str, name: &str) -> Arc<FunctionEntry> {
        Arc::new(FunctionEntry::new(
            TenantId::default_tenant(),
            name.parse().unwrap(),
            route.into(),
            HashMap::new(),
            HashMap::new(),
        ))
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let t = RouteTable::default();
        let t = t.with(
            (TenantId::default_tenant(), "a".parse().unwrap()),
            Some(entry("/api", "a")),
        );
        let t = t.with(
            (TenantId::default_tenant(), "b".parse().unwrap()),
            Some(entry("/api/users", "b")),
        );
        let (e, rest) = t.resolve(DEFAULT_TENANT, "/api/users/7").unwrap();
        assert_eq!((e.name.as_str(), rest), ("b", "/7"));
        let (e, rest) = t.resolve(DEFAULT_TENANT, "/api/other").unwrap();
        assert_eq!((e.name.as_str(), rest), ("a", "/other"));
        let (e, rest) = t.resolve(DEFAULT_TENANT, "/api").unwrap();
        assert_eq!((e.name.as_str(), rest), ("a", ""));
        assert!(t.resolve(DEFAULT_TENANT, "/apix").is_none());
        assert!(t.resolve(DEFAULT_TENANT, "/").is_none());
    }
}
