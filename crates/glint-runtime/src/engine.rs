//! The wasmtime engine of a node, and turning uploaded bytes into a ready component.
//!
//! One [`Runtime`] per node holds the `Engine` (pooling allocator, copy-on-write memory
//! images, epoch interruption), a `Linker` with all of WASI 0.2, `wasi:http`'s types and
//! the node's [`Capabilities`], and the on-disk compile cache. A deploy compiles once; the compiled code is written to
//! `<cache>/<engine hash>/<sha256>.cwasm`, so a restart only maps those files back in.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::capabilities::Capabilities;
use crate::guest::{EPOCH_TICK, GuestState};
use crate::manifest::MAX_MEMORY_MB;

/// Why an upload cannot become a version. Each message says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("the upload is empty; send the bytes of a WebAssembly component (.wasm)")]
    Empty,
    #[error(
        "the upload is not WebAssembly (it does not start with \\0asm); send the .wasm file your build produced"
    )]
    NotWasm,
    #[error(
        "the upload is a core WebAssembly module, not a component; build for `wasm32-wasip2` \
         (or run `wasm-tools component new`) to get a component"
    )]
    CoreModule,
    #[error("the component is invalid: {0}")]
    Invalid(String),
    #[error(
        "the component exports no HTTP handler: neither `wasi:http/incoming-handler@0.2.x` \
         (the `wasi:http/proxy` world of WASI 0.2) nor `wasi:http/handler@0.3.x` (the \
         `wasi:http/service` world of WASI 0.3); build it against one of them ({0})"
    )]
    NoHttpHandler(String),
    #[error("the component imports something Glint does not provide: {0}")]
    UnsupportedImport(String),
    #[error(
        "`scaling.reuse` needs a JavaScript component whose module exports its HTTP handler, \
         as `glint build` makes them; this one answers through StarlingMonkey's built-in fetch \
         event, which cannot serve a second request in one instance (StarlingMonkey issue 247). \
         Build it with `glint build`, or remove `reuse` from [scaling]"
    )]
    NotReusable,
    #[error(
        "`scaling.max_concurrent_per_instance` above 1 needs a WASI 0.3 component \
         (wasi:http/service), whose handler is async; a WASI 0.2 instance serves one request \
         at a time. Remove it, or rebuild the function for WASI 0.3"
    )]
    ConcurrencyOfWasi02,
    #[error("cannot write the compile cache: {0}")]
    Cache(String),
}

/// Counters the node exports as metrics.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    pub compiles: AtomicU64,
    pub compile_micros: AtomicU64,
    pub cache_loads: AtomicU64,
    /// Instances created, and requests served by a kept instance (reuse mode).
    pub instantiations: AtomicU64,
    pub reuses: AtomicU64,
    /// Versions whose compiled code the node dropped after they sat idle.
    pub evictions: AtomicU64,
}

/// Which compiler turns components into machine code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compiler {
    /// Optimising: the fastest code, seconds to compile a large component. For serving.
    #[default]
    Cranelift,
    /// Baseline: compiles several times faster, runs slower. For `glint run`, where a
    /// saved change should serve within a second.
    Winch,
}

/// Node-wide runtime settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub compiler: Compiler,
    /// Root of the compile cache.
    pub cache_dir: PathBuf,
    /// Instances that may run at once on this node, across all functions.
    pub max_instances: u32,
    /// What guests may use besides WASI, linked into every component.
    pub capabilities: Capabilities,
    /// The node's key for the compile cache's MACs: compiled code is machine code that
    /// wasmtime maps in unchecked, so the node loads only files it wrote itself.
    pub cache_key: [u8; 32],
}

type CacheMac = hmac::Hmac<sha2::Sha256>;
const MAC_LEN: usize = 32;

fn cache_mac(key: &[u8; 32], bytes: &[u8]) -> CacheMac {
    use hmac::Mac;
    let mut mac = <CacheMac as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(bytes);
    mac
}

/// The HTTP world a component serves, told apart at deploy by what it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpWorld {
    /// `wasi:http/proxy`: exports `wasi:http/incoming-handler@0.2.x`.
    Wasi02,
    /// `wasi:http/service`: exports `wasi:http/handler@0.3.x`, whose instances can serve
    /// several requests at once.
    Wasi03,
}

impl HttpWorld {
    /// As the API and the CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpWorld::Wasi02 => "wasi-0.2",
            HttpWorld::Wasi03 => "wasi-0.3",
        }
    }
}

/// The linked handler of a component, by world.
#[derive(Clone)]
pub(crate) enum HandlerPre {
    Wasi02(ProxyPre<GuestState>),
    Wasi03(ServicePre<GuestState>),
}

/// A component compiled for this engine and linked, ready to instantiate per request.
#[derive(Clone)]
pub struct Compiled {
    pub(crate) pre: HandlerPre,
    pub sha256: Arc<str>,
}

impl Compiled {
    /// Checks that the version's `[scaling]` suits its world.
    pub fn check_scaling(&self, scaling: &crate::manifest::Scaling) -> Result<(), ComponentError> {
        if scaling.max_concurrent_per_instance > 1 && self.world() == HttpWorld::Wasi02 {
            return Err(ComponentError::ConcurrencyOfWasi02);
        }
        Ok(())
    }

    pub fn world(&self) -> HttpWorld {
        match self.pre {
            HandlerPre::Wasi02(_) => HttpWorld::Wasi02,
            HandlerPre::Wasi03(_) => HttpWorld::Wasi03,
        }
    }
}

/// Work for the compile-cache writer thread.
enum CacheJob {
    Write(Component, PathBuf),
    /// Answered once every earlier write is on disk.
    Barrier(std::sync::mpsc::Sender<()>),
}

/// The engine, linker and compile cache of one node.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<GuestState>,
    cache_dir: PathBuf,
    pub stats: Arc<RuntimeStats>,
    /// Caps the instances kept idle for reuse, across every function of the node.
    pub idle_budget: Arc<crate::budget::IdleBudget>,
    /// The node's capabilities: the node checks, provisions and prepares versions with
    /// them, and each instance gets their state.
    pub capabilities: Capabilities,
    /// One permit per slot of the pooling allocator: an instance holds one for its life.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    pub(crate) max_instances: u32,
    ticker_stop: Arc<AtomicBool>,
    /// Serialising and writing compiled code happens off the deploy's path, on a thread
    /// of its own; a deploy is acknowledged once it is compiled and stored.
    cache_jobs: std::sync::mpsc::Sender<CacheJob>,
    cache_key: [u8; 32],
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(max_instances: u32, compiler: Compiler) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances.saturating_mul(4))
        .total_memories(max_instances.saturating_mul(2))
        .total_tables(max_instances.saturating_mul(4))
        .total_stacks(max_instances)
        .max_memory_size((MAX_MEMORY_MB * 1024 * 1024) as usize)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        .max_core_instances_per_component(64)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // Keep a little of each memory resident so reusing a slot skips page faults.
        .linear_memory_keep_resident(64 * 1024)
        .table_keep_resident(16 * 1024);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_component_model_async(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if compiler == Compiler::Winch {
        config.strategy(wasmtime::Strategy::Winch);
    }
    config
}

/// `wasi:http/types` of WASI 0.2 and 0.3, for the request a guest is handed and the
/// response it makes. Sending (0.2's outgoing handler, 0.3's client) is the outbound
/// capability's.
fn link_http_types(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    use wasmtime_wasi_http::p2::bindings::{LinkOptions, http::types};
    use wasmtime_wasi_http::{WasiHttp, WasiHttpView, p3};
    let options = LinkOptions::default();
    types::add_to_linker::<_, WasiHttp>(linker, &options.into(), GuestState::http)?;
    p3::bindings::http::types::add_to_linker::<_, WasiHttp>(linker, GuestState::http)
}

/// Everything a compiled artefact depends on besides the input bytes.
fn engine_hash(engine: &Engine) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Refuses a component that imports a Spin interface Glint does not offer, naming it
/// (the linker's own error would say only that an instance is missing).
fn check_spin_imports(engine: &Engine, component: &Component) -> Result<(), ComponentError> {
    use crate::capabilities::spin;
    let missing: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| spin::offered(name) == Some(false))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ComponentError::UnsupportedImport(format!(
        "it imports {}, a Spin interface Glint does not offer (it offers {} over its own KV \
         stores and env vars); build the component without it",
        missing.join(", "),
        spin::OFFERED_NAMES
    )))
}

/// Quick shape checks before handing bytes to the compiler, for clear errors.
pub fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    if bytes.is_empty() {
        return Err(ComponentError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ComponentError::NotWasm);
    }
    // Bytes 4..8 are version and layer: layer 0 is a core module, layer 1 a component.
    match [bytes[6], bytes[7]] {
        [0, 0] => Err(ComponentError::CoreModule),
        [1, 0] => Ok(()),
        _ => Err(ComponentError::Invalid(
            "unknown WebAssembly layer in the header; is the file truncated or from a newer toolchain?".into(),
        )),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// For `[scaling] reuse`: refuses a JavaScript component (StarlingMonkey, by
/// componentize-js) that answers through the runtime's built-in fetch event rather than
/// a handler its module exports, as such an instance hangs on its second request. A byte
/// search for markers the two tools write; at deploy only, never per request.
pub fn check_reusable(bytes: &[u8]) -> Result<(), ComponentError> {
    let fetch_event_only = contains(bytes, b"StarlingMonkey engine initializing")
        && !contains(
            bytes,
            b"getInterfaceExport($source_mod, 'incomingHandler', 'wasi:http/incoming-handler@",
        );
    if fetch_event_only {
        return Err(ComponentError::NotReusable);
    }
    Ok(())
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(config.max_instances, config.compiler))
            .map_err(|e| anyhow::anyhow!("cannot create the wasmtime engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("cannot link WASI 0.2: {e}"))?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(|e| anyhow::anyhow!("cannot link WASI 0.3: {e}"))?;
        link_http_types(&mut linker).map_err(|e| anyhow::anyhow!("cannot link wasi:http: {e}"))?;
        config.capabilities.link(&mut linker)?;
        let cache_dir = config.cache_dir.join(engine_hash(&engine));
        std::fs::create_dir_all(&cache_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the compile cache {}: {e}",
                cache_dir.display()
            )
        })?;
        remove_partial_writes(&cache_dir);

        // The epoch ticker: a plain thread, so it keeps ticking when every tokio worker is
        // busy running guests.
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, weak) = (ticker_stop.clone(), engine.weak());
        std::thread::Builder::new()
            .name("glint-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        let (cache_jobs, jobs) = std::sync::mpsc::channel();
        let cache_key = config.cache_key;
        std::thread::Builder::new()
            .name("glint-cache-writer".into())
            .spawn(move || write_cache_files(jobs, &cache_key))?;
        Ok(Self {
            engine,
            linker,
            cache_dir,
            stats: Arc::default(),
            // Half the pool at most sits idle, so reuse never starves fresh instances.
            idle_budget: crate::budget::IdleBudget::new(config.max_instances as usize / 2),
            capabilities: config.capabilities,
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_instances as usize)),
            max_instances: config.max_instances,
            ticker_stop,
            cache_jobs,
            cache_key: config.cache_key,
        })
    }

    /// Waits until every compiled component handed to the cache writer is on disk.
    /// Blocking: a stopping node calls it so its restart compiles nothing.
    pub fn flush_cache(&self) {
        let (ack, done) = std::sync::mpsc::channel();
        if self.cache_jobs.send(CacheJob::Barrier(ack)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(60));
        }
    }

    fn cache_path(&self, sha256: &str) -> PathBuf {
        self.cache_dir.join(format!("{sha256}.cwasm"))
    }

    fn link(&self, component: &Component, sha256: &str) -> Result<Compiled, ComponentError> {
        check_spin_imports(&self.engine, component)?;
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| ComponentError::UnsupportedImport(format!("{e:#}")))?;
        let pre = match ServicePre::new(pre.clone()) {
            Ok(service) => HandlerPre::Wasi03(service),
            Err(_) => HandlerPre::Wasi02(
                ProxyPre::new(pre).map_err(|e| ComponentError::NoHttpHandler(format!("{e:#}")))?,
            ),
        };
        Ok(Compiled {
            pre,
            sha256: sha256.into(),
        })
    }

    /// Validates, compiles and links an upload, then writes it to the compile cache.
    /// Blocking: call it on a blocking thread.
    pub fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Compiled, ComponentError> {
        check_header(bytes)?;
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
        self.stats.compiles.fetch_add(1, Ordering::Relaxed);
        self.stats
            .compile_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let compiled = self.link(&component, sha256)?;
        let _ = self
            .cache_jobs
            .send(CacheJob::Write(component, self.cache_path(sha256)));
        Ok(compiled)
    }

    /// Maps a compiled artefact back in from the cache, if it is there and intact: its
    /// MAC under the node's cache key must match, or the file is removed (and the caller
    /// compiles again). Blocking: call it on a blocking thread.
    pub fn load_cached(&self, sha256: &str) -> Option<Compiled> {
        let path = self.cache_path(sha256);
        let file = match std::fs::read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the compile cache; recompiling");
                return None;
            }
        };
        let unusable = |why: &str| {
            tracing::warn!(path = %path.display(), "compile cache entry {why}; recompiling");
            let _ = std::fs::remove_file(&path);
            None
        };
        let Some(split) = file.len().checked_sub(MAC_LEN) else {
            return unusable("is truncated");
        };
        let (code, mac) = file.split_at(split);
        if hmac::Mac::verify_slice(cache_mac(&self.cache_key, code), mac).is_err() {
            return unusable(
                "does not match its MAC (changed on disk, or written under another node key)",
            );
        }
        // SAFETY: `code` is exactly what this node's `Component::serialize` wrote (the
        // MAC, under a key only the node holds, proves it), and wasmtime checks its header
        // against the engine's configuration before using it.
        let loaded = unsafe { Component::deserialize(&self.engine, code) };
        match loaded.ok().and_then(|c| self.link(&c, sha256).ok()) {
            Some(compiled) => {
                self.stats.cache_loads.fetch_add(1, Ordering::Relaxed);
                Some(compiled)
            }
            None => unusable("is unusable"),
        }
    }

    /// The cached artefact if present, else a fresh compile of `bytes()`.
    /// Also says whether the component came from the compile cache (`true`) or had to
    /// be compiled.
    pub fn load_or_compile(
        &self,
        sha256: &str,
        bytes: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<(Compiled, bool)> {
        if let Some(c) = self.load_cached(sha256) {
            return Ok((c, true));
        }
        let bytes = bytes()?;
        Ok((self.compile(&bytes, sha256)?, false))
    }
}

/// Writes each compiled component as its serialised code followed by its MAC.
fn write_cache_files(jobs: std::sync::mpsc::Receiver<CacheJob>, key: &[u8; 32]) {
    for job in jobs {
        match job {
            CacheJob::Write(component, path) => {
                let written = component
                    .serialize()
                    .map_err(|e| format!("{e:#}"))
                    .and_then(|mut bytes| {
                        let mac = hmac::Mac::finalize(cache_mac(key, &bytes)).into_bytes();
                        bytes.extend_from_slice(&mac);
                        write_atomically(&path, &bytes).map_err(|e| e.to_string())
                    });
                if let Err(e) = written {
                    // The node still serves; a restart compiles this component again.
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the compile cache");
                }
            }
            CacheJob::Barrier(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// Deletes temp files that a crash left behind mid-write; only complete files are
/// ever renamed to `.cwasm`.
fn remove_partial_writes(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let partial = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.starts_with("tmp"));
        if partial {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks_tell_modules_from_components() {
        assert!(matches!(check_header(b""), Err(ComponentError::Empty)));
        assert!(matches!(
            check_header(b"hello world"),
            Err(ComponentError::NotWasm)
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(ComponentError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn js_components_answering_through_the_fetch_event_are_not_reusable() {
        let engine = b"..StarlingMonkey engine initializing..".to_vec();
        assert!(matches!(
            check_reusable(&engine),
            Err(ComponentError::NotReusable)
        ));
        let mut exported = engine.clone();
        exported.extend_from_slice(
            b"__iface = getInterfaceExport($source_mod, 'incomingHandler', 'wasi:http/incoming-handler@0.2.10');",
        );
        assert!(check_reusable(&exported).is_ok());
        assert!(check_reusable(b"\0asm a Rust component").is_ok());
    }
}
