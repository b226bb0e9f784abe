//! The node's shared state and the operations the admin API calls.
//!
//! [`Node`] ties the store, the runtime and the route table together. Every change to a
//! function goes through here: it is written to the store first, then the function's
//! entry in the route table is rebuilt from what the store holds, so the table never
//! shows a state the store does not have.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use glint_runtime::{
    Compiled, InstancePool, Manifest, Runtime, VersionContext, check_header, check_reusable,
};
use glint_store::{
    AliasName, FunctionName, KeyValue, NewVersion, Store, StoreError, TenantId, VersionId,
    VersionRecord,
};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore};

use crate::error::ApiError;
use crate::keys::KeyTable;
use crate::logs::{LogContext, LogPipe};
use crate::routes::{Alias, FunctionEntry, RouteTable, VersionSlot};
use crate::secrets::SecretKey;
use crate::usage::Meter;

/// What a node is, besides its state: its identity and its shared services.
pub struct NodeParts {
    pub store: Arc<dyn Store>,
    pub kv: Arc<dyn KeyValue>,
    pub secret_key: SecretKey,
    pub runtime: Arc<Runtime>,
    pub logs: LogPipe,
    pub meter: Arc<Meter>,
    pub public_url: String,
    pub node_id: String,
    pub region: String,
    pub base_domain: Option<String>,
    pub eviction: Eviction,
    /// Time a client has to send a request's body to the data plane.
    pub body_read_timeout: std::time::Duration,
}

/// When the node drops compiled code from memory: versions idle for `idle_after`, and
/// the least recently used beyond `max_loaded`. Versions with `min_instances >= 1` stay.
#[derive(Clone, Copy, Debug)]
pub struct Eviction {
    /// Zero: never for idleness.
    pub idle_after: std::time::Duration,
    pub max_loaded: usize,
}

impl Default for Eviction {
    fn default() -> Self {
        Self {
            idle_after: std::time::Duration::from_secs(600),
            max_loaded: 1000,
        }
    }
}

pub struct Node {
    pub store: Arc<dyn Store>,
    /// Users' KV stores.
    pub kv: Arc<dyn KeyValue>,
    secret_key: SecretKey,
    pub runtime: Arc<Runtime>,
    pub routes: ArcSwap<RouteTable>,
    pub keys: KeyTable,
    /// The suspended tenants.
    pub tenants: crate::tenants::TenantTable,
    pub logs: LogPipe,
    /// Usage metering, recent statistics and Prometheus metrics.
    pub meter: Arc<Meter>,
    /// This node's name and region, on every log line it writes.
    pub node_id: Arc<str>,
    pub region: Arc<str>,
    pub started: Instant,
    /// The data plane's address, for the URLs the API hands out.
    pub public_url: String,
    /// `--base-domain`, lowercased: functions answer on `<function>.<tenant>.DOMAIN`.
    pub base_domain: Option<String>,
    /// Serialises changes to functions, so two rebuilds never race.
    changes: Mutex<()>,
    pub eviction: Eviction,
    pub body_read_timeout: std::time::Duration,
    /// Versions loaded since the last sweep, and how many were loaded after it: the
    /// housekeeper sweeps early when together they pass `max_loaded`.
    loads_since_sweep: AtomicUsize,
    loaded_at_sweep: AtomicUsize,
}

impl Node {
    /// Where the data plane serves a tenant's function, or `None` where no request can
    /// reach it: with `--base-domain`, `<function>.<tenant>.DOMAIN` (or, for a name that
    /// is no DNS label, `<tenant>.DOMAIN<route>`); without one, `default`'s functions by
    /// route alone.
    pub fn function_url(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        route: &str,
    ) -> Option<String> {
        let tenant_base = self.tenant_base(tenant)?;
        let label = name.as_str();
        let dns_label = label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        match (&self.base_domain, dns_label) {
            (Some(_), true) => {
                let (scheme, rest) = tenant_base.split_once("://")?;
                Some(format!("{scheme}://{label}.{rest}"))
            }
            _ => Some(format!("{tenant_base}{route}")),
        }
    }

    /// The base of a tenant's URLs on the data plane (`<tenant>.DOMAIN` with a base
    /// domain, else the node's address for `default` only).
    pub fn tenant_base(&self, tenant: &TenantId) -> Option<String> {
        match &self.base_domain {
            Some(domain) => {
                let (scheme, authority) = self.public_url.split_once("://")?;
                let port = authority
                    .rsplit_once(':')
                    .map(|(_, p)| p)
                    .filter(|p| p.bytes().all(|b| b.is_ascii_digit()));
                let port = match (scheme, port) {
                    ("http", Some("80")) | ("https", Some("443")) | (_, None) => String::new(),
                    (_, Some(p)) => format!(":{p}"),
                };
                Some(format!("{scheme}://{tenant}.{domain}{port}"))
            }
            None if tenant.as_str() == glint_store::DEFAULT_TENANT => Some(self.public_url.clone()),
            None => None,
        }
    }

    pub fn new(parts: NodeParts) -> Self {
        Self {
            store: parts.store,
            kv: parts.kv,
            secret_key: parts.secret_key,
            runtime: parts.runtime,
            routes: ArcSwap::default(),
            keys: KeyTable::default(),
            tenants: Default::default(),
            logs: parts.logs,
            meter: parts.meter,
            node_id: parts.node_id.into(),
            region: parts.region.into(),
            started: Instant::now(),
            public_url: parts.public_url,
            base_domain: parts.base_domain,
            changes: Mutex::new(()),
            eviction: parts.eviction,
            body_read_timeout: parts.body_read_timeout,
            loads_since_sweep: AtomicUsize::new(0),
            loaded_at_sweep: AtomicUsize::new(0),
        }
    }

    /// Loads every function into the route table, mapping aliased versions in from the
    /// compile cache (up to `max_loaded` of them; the rest load on first use). Versions
    /// whose cache entry is missing are compiled now.
    pub async fn load_all(&self) -> anyhow::Result<()> {
        let _guard = self.changes.lock().await;
        let mut loaded = 0;
        let mut secrets: HashMap<TenantId, HashMap<String, String>> = HashMap::new();
        let mut entries = Vec::new();
        for f in self.store.all_functions().await? {
            if !secrets.contains_key(&f.tenant) {
                match self.open_secrets(&f.tenant).await {
                    Ok(opened) => secrets.insert(f.tenant.clone(), opened),
                    Err(e) => {
                        // One tenant's unreadable secrets must not keep the node from
                        // serving everyone else.
                        tracing::error!(tenant = %f.tenant, error = %e, "cannot read the tenant's secrets; its function {} will not be served", f.name);
                        continue;
                    }
                };
            }
            let warm = loaded < self.eviction.max_loaded;
            match self
                .build_entry(&f.tenant, &f.name, None, warm, &secrets[&f.tenant])
                .await
            {
                Ok(Some(entry)) => {
                    loaded += entry.loaded_versions();
                    entries.push(Arc::new(entry));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(function = %f.name, error = %e, "cannot load function; it will not be served")
                }
            }
        }
        // One table for all: swapping in a copy per function would cost N² at start-up.
        self.routes
            .store(Arc::new(RouteTable::from_entries(entries)));
        Ok(())
    }

    /// Compiles, stores and routes a new version. Nothing is stored unless every check
    /// passes; the version is durable when this returns.
    pub async fn deploy(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        manifest_text: String,
        component: Vec<u8>,
        move_alias: Option<AliasName>,
    ) -> Result<VersionRecord, ApiError> {
        let started = Instant::now();
        let manifest = Manifest::parse(&manifest_text)?;
        let config = manifest.config(name)?;
        self.runtime.capabilities.check(&config)?;
        self.check_secrets(tenant, &config.secrets).await?;
        check_header(&component)?;
        if config.scaling.reuse {
            check_reusable(&component)?;
        }
        let sha256 = hex::encode(Sha256::digest(&component));

        let runtime = self.runtime.clone();
        let (bytes, sha) = (component, sha256.clone());
        let (compiled, component) = tokio::task::spawn_blocking(move || {
            let compiled = match runtime.load_cached(&sha) {
                Some(c) => Ok(c),
                None => runtime.compile(&bytes, &sha),
            };
            (compiled, bytes)
        })
        .await
        .map_err(|e| ApiError::hidden("the compile task failed", e))?;
        let compiled = compiled?;
        compiled.check_scaling(&config.scaling)?;
        let compiled_at = Instant::now();

        let _guard = self.changes.lock().await;
        // Whatever can fail comes before the version is stored: an error answer means the
        // deploy did not happen.
        self.check_deploy_quotas(tenant, name, &sha256, component.len() as u64)
            .await?;
        let secrets = self.open_secrets(tenant).await?;
        let version = VersionContext {
            tenant,
            function: name,
            config: &config,
            env: &[],
        };
        self.runtime.capabilities.provision(&version).await?;
        let record = self
            .store
            .deploy(NewVersion {
                tenant: tenant.clone(),
                function: name.clone(),
                route: config.route,
                component,
                sha256,
                manifest: manifest_text,
                world: compiled.world().as_str().to_string(),
                move_alias,
            })
            .await?;
        let stored_at = Instant::now();
        // Stored is deployed: from here on the answer is success. Should the route table
        // fail to rebuild now (a storage read failing right after a write), the version
        // still serves after the next change or restart.
        let fresh = Some((record.version, compiled));
        if let Err(e) = self.rebuild_with(tenant, name, fresh, true, &secrets).await {
            tracing::error!(function = %name, version = %record.version, error = %e, "deployed, but the route table was not updated; the version serves after the next change or restart");
        }
        drop(_guard);
        // Should the store not take it now, the follower says it again with this change.
        let _ = self.report_ready(tenant, name).await;
        tracing::info!(
            function = %name,
            version = %record.version,
            size = record.size,
            compile_ms = (compiled_at - started).as_millis() as u64,
            store_ms = (stored_at - compiled_at).as_millis() as u64,
            route_ms = stored_at.elapsed().as_millis() as u64,
            "deployed"
        );
        Ok(record)
    }

    /// Runs `change` against the store, then rebuilds the function's route entry.
    pub async fn change<T, F, Fut>(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        change: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let _guard = self.changes.lock().await;
        let out = change(self.store.clone()).await?;
        self.rebuild(tenant, name, None, true).await?;
        Ok(out)
    }

    pub async fn delete_function(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
    ) -> Result<(), ApiError> {
        let _guard = self.changes.lock().await;
        self.store.delete_function(tenant, name).await?;
        self.drop_entry(tenant, name);
        Ok(())
    }

    /// Refuses a deploy for a tenant being deleted, or one that would take the tenant
    /// past its quotas of functions,
    /// versions per function or component bytes. Checked on this node under its deploy
    /// lock: two nodes deploying for one tenant at once can each pass it, and go past a
    /// quota by one.
    async fn check_deploy_quotas(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        sha256: &str,
        size: u64,
    ) -> Result<(), ApiError> {
        let record = self.store.tenant(tenant).await?;
        // Before its KV stores are made: a deploy racing the tenant's deletion must not
        // leave one behind.
        if record.status == glint_store::TenantStatus::Deleting {
            return Err(ApiError::new(
                http::StatusCode::CONFLICT,
                "tenant_deleting",
                format!("tenant '{tenant}' is being deleted; nothing more is deployed to it"),
            ));
        }
        let quotas = record.effective_quotas();
        if quotas == glint_store::Quotas::default() {
            return Ok(());
        }
        let functions = self.store.functions(tenant).await?;
        let exists = functions.iter().any(|f| &f.name == name);
        if let Some(max) = quotas.functions
            && !exists
            && functions.len() as u64 >= max
        {
            return Err(ApiError::quota(
                "functions",
                format!(
                    "tenant '{tenant}' has {} functions, its quota (functions); delete one with `glint delete NAME`, or ask the operator to raise it",
                    functions.len()
                ),
            ));
        }
        let mut components: HashMap<String, u64> = HashMap::new();
        for function in &functions {
            let versions = self.store.versions(tenant, &function.name).await?;
            if let Some(max) = quotas.versions_per_function
                && &function.name == name
                && versions.len() as u64 >= max
            {
                return Err(ApiError::quota(
                    "versions_per_function",
                    format!(
                        "tenant '{tenant}' has {} versions of '{name}', its quota (versions_per_function); delete old ones (`glint versions {name}` lists them; DELETE /api/v1/functions/{name}/versions/vN), or ask the operator to raise it",
                        versions.len()
                    ),
                ));
            }
            components.extend(versions.into_iter().map(|v| (v.sha256, v.size)));
        }
        if let Some(max) = quotas.component_bytes
            && !components.contains_key(sha256)
        {
            let total = components.values().sum::<u64>() + size;
            if total > max {
                return Err(ApiError::quota(
                    "component_bytes",
                    format!(
                        "tenant '{tenant}' would hold {total} bytes of components, past its quota of {max} (component_bytes); delete old versions or functions, or ask the operator to raise it"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Takes a function that is gone from the store out of the route table.
    pub(crate) async fn forget_function(&self, tenant: &TenantId, name: &FunctionName) {
        let _guard = self.changes.lock().await;
        self.drop_entry(tenant, name);
    }

    fn drop_entry(&self, tenant: &TenantId, name: &FunctionName) {
        self.meter.forget(tenant, name, &[]);
        let table = self
            .routes
            .load()
            .with((tenant.clone(), name.clone()), None);
        self.routes.store(Arc::new(table));
    }

    /// Rebuilds a function's entry from the store, as a change made elsewhere left it. Its
    /// versions are not loaded here: [`Node::warm`] loads them once the entry serves.
    pub(crate) async fn rebuild_locked(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
    ) -> Result<(), ApiError> {
        let _guard = self.changes.lock().await;
        self.rebuild(tenant, name, None, false).await
    }

    /// Rebuilds the tenant's functions, after its secrets changed elsewhere.
    pub(crate) async fn rebuild_tenant_locked(&self, tenant: &TenantId) -> Result<(), ApiError> {
        let _guard = self.changes.lock().await;
        self.rebuild_tenant(tenant).await
    }

    /// Refuses a deploy whose manifest names secrets the tenant does not have.
    async fn check_secrets(&self, tenant: &TenantId, names: &[String]) -> Result<(), ApiError> {
        if names.is_empty() {
            return Ok(());
        }
        let have = self.store.secrets(tenant).await?;
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !have.iter().any(|h| &h.name == *n))
            .map(String::as_str)
            .collect();
        if let Some(first) = missing.first() {
            return Err(ApiError::bad_request(
                "secret_not_set",
                format!(
                    "glint.toml names secret(s) {} that are not set; set each with `glint secret set {first}` (the value is read from stdin), then deploy again",
                    missing.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The tenant's secrets, opened. A value sealed under another key is left out, with
    /// an error in the node's log.
    async fn open_secrets(&self, tenant: &TenantId) -> Result<HashMap<String, String>, ApiError> {
        let mut out = HashMap::new();
        for (name, sealed) in self.store.sealed_secrets(tenant).await? {
            match self.secret_key.open(tenant, &name, &sealed) {
                Some(value) => {
                    out.insert(name, value);
                }
                None => tracing::error!(
                    tenant = %tenant, secret = %name,
                    "cannot open a secret: it was sealed with another secret key; set it again or start the node with the key it was sealed with"
                ),
            }
        }
        Ok(out)
    }

    /// Stores a secret sealed, then rebuilds the tenant's functions so they see it.
    pub async fn set_secret(
        &self,
        tenant: &TenantId,
        name: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        let sealed = self.secret_key.seal(tenant, name, value);
        let _guard = self.changes.lock().await;
        self.store.set_secret(tenant, name, sealed).await?;
        self.rebuild_tenant(tenant).await
    }

    pub async fn delete_secret(&self, tenant: &TenantId, name: &str) -> Result<(), ApiError> {
        let _guard = self.changes.lock().await;
        self.store.delete_secret(tenant, name).await?;
        self.rebuild_tenant(tenant).await
    }

    async fn rebuild_tenant(&self, tenant: &TenantId) -> Result<(), ApiError> {
        for f in self.store.functions(tenant).await? {
            // Versions loaded now stay loaded; evicted ones load on their next request.
            self.rebuild(tenant, &f.name, None, false).await?;
        }
        Ok(())
    }

    /// Rebuilds one function's entry from the store and swaps it into the route table.
    /// Versions that are already loaded keep their compiled code and concurrency limit;
    /// with `warm`, aliased versions not in memory are loaded now.
    async fn rebuild(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        fresh: Option<(VersionId, Compiled)>,
        warm: bool,
    ) -> Result<(), ApiError> {
        let secrets = self.open_secrets(tenant).await?;
        self.rebuild_with(tenant, name, fresh, warm, &secrets).await
    }

    /// [`Node::rebuild`] with the tenant's secrets already opened.
    async fn rebuild_with(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        fresh: Option<(VersionId, Compiled)>,
        warm: bool,
        secrets: &HashMap<String, String>,
    ) -> Result<(), ApiError> {
        let entry = self.build_entry(tenant, name, fresh, warm, secrets).await?;
        // Meters and metric series of versions gone from the store go too.
        let kept: Vec<VersionId> = entry
            .as_ref()
            .map(|e| e.versions.keys().copied().collect())
            .unwrap_or_default();
        self.meter.forget(tenant, name, &kept);
        let key = (tenant.clone(), name.clone());
        let table = self.routes.load().with(key, entry.map(Arc::new));
        self.routes.store(Arc::new(table));
        Ok(())
    }

    /// A function's route entry as the store has it now, or `None` if it is gone.
    /// `secrets` are the tenant's, opened.
    async fn build_entry(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
        fresh: Option<(VersionId, Compiled)>,
        warm: bool,
        secrets: &HashMap<String, String>,
    ) -> Result<Option<FunctionEntry>, ApiError> {
        let function = match self.store.function(tenant, name).await {
            Ok(f) => f,
            Err(StoreError::FunctionNotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let versions = self.store.versions(tenant, name).await?;
        let aliases = self.store.aliases(tenant, name).await?;
        let api_env = self.store.env(tenant, name).await?;
        let old = self.entry(tenant, name);

        let mut slots = HashMap::new();
        for v in versions {
            let manifest = Manifest::parse(&v.manifest).and_then(|m| m.config(name));
            let config = match manifest {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(function = %name, version = %v.version, error = %e, "stored manifest no longer valid");
                    continue;
                }
            };
            let mut env = config.env.clone();
            for (k, value) in &api_env {
                env.retain(|(existing, _)| existing != k);
                env.push((k.clone(), value.clone()));
            }
            let mut secret_values = Vec::new();
            for secret in &config.secrets {
                // A secret deleted since the deploy is simply absent.
                if let Some(value) = secrets.get(secret) {
                    env.retain(|(existing, _)| existing != secret);
                    env.push((secret.clone(), value.clone()));
                    secret_values.push(value.clone());
                }
            }
            let version = VersionContext {
                tenant,
                function: name,
                config: &config,
                env: &env,
            };
            let grants = match self.runtime.capabilities.prepare(&version) {
                Ok(grants) => Arc::new(grants),
                Err(e) => {
                    tracing::error!(function = %name, version = %v.version, error = %e, "stored manifest no longer valid");
                    continue;
                }
            };
            let previous = old
                .as_ref()
                .and_then(|o| o.versions.get(&v.version))
                .filter(|p| p.sha256 == v.sha256);
            let compiled = previous.map(|p| p.compiled.clone()).unwrap_or_default();
            let concurrency = previous
                .filter(|p| p.config.scaling == config.scaling)
                .map(|p| p.concurrency.clone())
                .unwrap_or_else(|| {
                    Arc::new(Semaphore::new(config.scaling.max_concurrency as usize))
                });
            let meter = self.meter.version(tenant, name, v.version);
            if let Some((fresh_version, c)) = &fresh
                && *fresh_version == v.version
                && compiled.current().set(c.clone()).is_ok()
            {
                compiled.touch(self.clock());
                self.loads_since_sweep.fetch_add(1, Ordering::Relaxed);
                self.count_cold_start(&meter, "compile");
            }
            // Instances that started with another config or env are not kept; a rebuild
            // that changed neither (another function's change, this node's own change
            // coming back on the change feed) keeps them warm.
            let pool = match previous.filter(|p| p.config == config && p.env == env) {
                Some(p) => p.pool.clone(),
                None => config.scaling.reuse.then(|| {
                    Arc::new(InstancePool::new(
                        &config.scaling,
                        self.runtime.idle_budget.clone(),
                    ))
                }),
            };
            let log_context = Arc::new(LogContext {
                tenant: tenant.clone(),
                function: name.clone(),
                version: v.version,
                min_level: config.log_level,
                secret_values,
                pipe: self.logs.clone(),
                meter: meter.clone(),
            });
            slots.insert(
                v.version,
                Arc::new(VersionSlot {
                    version: v.version,
                    sha256: v.sha256,
                    config,
                    grants,
                    env,
                    compiled,
                    concurrency,
                    pool,
                    log_context,
                    meter,
                }),
            );
        }

        let mut alias_table = HashMap::new();
        for a in aliases {
            let weighted: Vec<_> = a
                .targets
                .iter()
                .filter_map(|t| slots.get(&t.version).map(|s| (t.weight, s.clone())))
                .collect();
            // Aliased versions are warmed now, so their first request does not wait.
            for (_, slot) in weighted.iter().filter(|_| warm) {
                if let Err(e) = self.compiled(tenant, slot).await {
                    tracing::error!(function = %name, version = %slot.version, error = %e, "cannot load version");
                }
            }
            if let Some(alias) = Alias::new(weighted) {
                alias_table.insert(a.name, alias);
            }
        }

        Ok(Some(FunctionEntry::new(
            tenant.clone(),
            name.clone(),
            function.route,
            alias_table,
            slots,
        )))
    }

    /// The function's entry in the route table now, if it has one.
    pub(crate) fn entry(
        &self,
        tenant: &TenantId,
        name: &FunctionName,
    ) -> Option<Arc<FunctionEntry>> {
        self.routes
            .load()
            .function(tenant.as_str(), name.as_str())
            .cloned()
    }

    /// Loads the function's aliased versions, after a rebuild swapped its entry in: the
    /// route serves meanwhile, and the store's reads wait out a cluster still electing its
    /// leaders. A version that cannot load is logged, and loads on its first request.
    pub(crate) async fn warm(&self, tenant: &TenantId, name: &FunctionName) {
        let Some(entry) = self.entry(tenant, name) else {
            return;
        };
        for slot in entry.aliases.values().flat_map(|a| a.slots()) {
            if let Err(e) = self.compiled(tenant, slot).await {
                tracing::error!(function = %name, version = %slot.version, error = %e, "cannot load version; it loads on its first request");
            }
        }
    }

    fn count_cold_start(&self, meter: &crate::usage::VersionMeter, source: &'static str) {
        let labels = meter.labels();
        self.meter
            .metrics
            .cold_starts
            .get_or_create(&crate::metrics::ColdStartLabels {
                tenant: labels.tenant.clone(),
                function: labels.function.clone(),
                source,
            })
            .inc();
    }

    /// Milliseconds since the node started: the clock of idle eviction.
    pub fn clock(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The version's compiled component: in memory, else from the compile cache, else
    /// compiled from the stored bytes.
    pub async fn compiled(
        &self,
        tenant: &TenantId,
        slot: &VersionSlot,
    ) -> Result<Compiled, ApiError> {
        slot.compiled.touch(self.clock());
        if let Some(c) = slot.compiled.get() {
            return Ok(c);
        }
        // Boxed: only a cold start carries the load's state, not every request's future.
        Box::pin(self.load_compiled(tenant, slot)).await
    }

    /// Loads the version's component into memory, once however many requests wait for it.
    async fn load_compiled(
        &self,
        tenant: &TenantId,
        slot: &VersionSlot,
    ) -> Result<Compiled, ApiError> {
        slot.compiled
            .current()
            .get_or_try_init(|| async {
                let runtime = self.runtime.clone();
                let store = self.store.clone();
                let (tenant, sha) = (tenant.clone(), slot.sha256.clone());
                let handle = tokio::runtime::Handle::current();
                let (compiled, from_cache) = tokio::task::spawn_blocking(move || {
                    runtime.load_or_compile(&sha, || {
                        Ok(handle.block_on(store.artifact(&tenant, &sha))?)
                    })
                })
                .await
                .map_err(|e| ApiError::hidden("the node could not load the function", e))?
                .map_err(|e| {
                    ApiError::hidden("the node could not load the function", format!("{e:#}"))
                })?;
                let source = if from_cache { "cache" } else { "compile" };
                self.count_cold_start(&slot.meter, source);
                self.loads_since_sweep.fetch_add(1, Ordering::Relaxed);
                Ok(compiled)
            })
            .await
            .cloned()
    }

    /// Whether versions loaded since the last sweep may have passed `max_loaded`, so a
    /// sweep should not wait for its second.
    pub fn over_loaded_cap(&self) -> bool {
        self.loaded_at_sweep.load(Ordering::Relaxed)
            + self.loads_since_sweep.load(Ordering::Relaxed)
            > self.eviction.max_loaded
    }

    /// One round of housekeeping: drops reused instances past their age, then evicts
    /// the compiled code of versions idle for `idle_after`, and of the least recently
    /// used beyond `max_loaded`. Pinned versions (`min_instances >= 1`) stay, but count
    /// towards `max_loaded`. Returns how many versions it evicted.
    pub fn sweep(&self) -> usize {
        let Eviction {
            idle_after,
            max_loaded,
        } = self.eviction;
        self.loads_since_sweep.store(0, Ordering::Relaxed);
        let now = self.clock();
        let routes = self.routes.load();
        let mut loaded = 0;
        let mut candidates = Vec::new();
        for slot in routes.functions().flat_map(|f| f.versions.values()) {
            if let Some(pool) = &slot.pool {
                pool.sweep();
            }
            if !slot.compiled.initialized() {
                continue;
            }
            loaded += 1;
            if slot.config.scaling.min_instances == 0 {
                candidates.push((slot.compiled.idle_for(now), slot));
            }
        }
        // Longest idle first: those go for idleness, then for room.
        candidates.sort_by_key(|(idle, _)| std::cmp::Reverse(*idle));
        let mut evicted = 0;
        for (idle, slot) in candidates {
            let too_idle = !idle_after.is_zero() && idle >= idle_after.as_millis() as u64;
            if !too_idle && loaded - evicted <= max_loaded {
                break;
            }
            if slot.compiled.evict() {
                if let Some(pool) = &slot.pool {
                    pool.clear();
                }
                evicted += 1;
            }
        }
        self.loaded_at_sweep
            .store(loaded - evicted, Ordering::Relaxed);
        if evicted > 0 {
            self.runtime
                .stats
                .evictions
                .fetch_add(evicted as u64, Ordering::Relaxed);
            tracing::debug!(versions = evicted, "evicted idle compiled code");
        }
        evicted
    }
}
