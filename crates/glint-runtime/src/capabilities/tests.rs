//! A capability written in a test, registered in a node's list: it links, validates its
//! section and builds its state like the standard ones.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glint_store::Level;
use serde::Deserialize;
use wasmtime::component::{Component, Linker};

use super::*;
use crate::{Compiler, Invocation, LogStream, Runtime, RuntimeConfig, Usage, UsageSink};

/// `[probe] greeting = "..."`; the guest calls `glint:test/probe.hit`, which counts.
struct Probe;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeSection {
    greeting: String,
}

struct ProbeGrant(String);

struct ProbeState {
    greeting: String,
    hits: u32,
    log: Arc<dyn LogSink>,
}

impl InstanceState for ProbeState {
    fn restart(&mut self, log: &Arc<dyn LogSink>) {
        self.log = log.clone();
        self.hits = 0;
    }

    fn report(&self, usage: &mut Usage) {
        usage.outbound_allowed = self.hits;
    }
}

impl Capability for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn section(&self) -> Option<&'static str> {
        Some("probe")
    }

    fn link(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
        linker
            .instance("glint:test/probe")?
            .func_wrap("hit", |mut store, (): ()| {
                let parts = store.data_mut().capability::<ProbeState>();
                parts.state.hits += 1;
                let line = format!("{} #{}", parts.state.greeting, parts.state.hits);
                parts.state.log.line(LogStream::Host, Level::Info, line);
                Ok((parts.state.hits,))
            })
    }

    fn check(&self, config: &FunctionConfig) -> Result<(), ManifestError> {
        config.section::<ProbeSection>("probe").map(drop)
    }

    fn prepare(&self, version: &VersionContext<'_>) -> Result<Grant, ManifestError> {
        let section = version.config.section::<ProbeSection>("probe")?;
        let greeting = section.map_or_else(|| "hello".to_string(), |s| s.greeting);
        Ok(Arc::new(ProbeGrant(format!(
            "{greeting} from {}",
            version.function
        ))))
    }

    fn instantiate(&self, grant: &Grant, setup: &mut InstanceSetup<'_>) -> Box<dyn InstanceState> {
        let greeting = grant.downcast_ref::<ProbeGrant>().unwrap().0.clone();
        Box::new(ProbeState {
            greeting,
            hits: 0,
            log: setup.log.clone(),
        })
    }
}

/// Imports `glint:test/probe`; exports `run`, which calls `hit` twice and adds the results.
const PROBING: &str = r#"
(component
  (import "glint:test/probe" (instance $probe (export "hit" (func (result u32)))))
  (alias export $probe "hit" (func $hit))
  (core func $hit_lowered (canon lower (func $hit)))
  (core module $m
    (import "host" "hit" (func $hit (result i32)))
    (func (export "run") (result i32) call $hit call $hit i32.add))
  (core instance $i (instantiate $m (with "host" (instance (export "hit" (func $hit_lowered))))))
  (func (export "run") (result u32) (canon lift (core func $i "run"))))
"#;

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl LogSink for Lines {
    fn line(&self, _stream: LogStream, _level: Level, message: String) {
        self.0.lock().unwrap().push(message);
    }
}

impl UsageSink for Lines {
    fn finished(&self, _usage: Usage) {}
}

fn runtime(capabilities: Vec<Arc<dyn Capability>>, dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        compiler: Compiler::Winch,
        cache_dir: dir.to_path_buf(),
        max_instances: 4,
        capabilities: Capabilities::new(capabilities),
        cache_key: [7; 32],
    })
    .unwrap()
}

fn config(text: &str) -> FunctionConfig {
    Manifest::parse(text)
        .unwrap()
        .config(&"hello".parse().unwrap())
        .unwrap()
}

#[test]
fn a_registered_capability_validates_its_section_and_others_are_unknown() {
    let with = Capabilities::new(vec![Arc::new(Probe)]);
    let without = Capabilities::new(vec![Arc::new(logs::Logs)]);
    let good = config("[probe]\ngreeting = \"hi\"\n");
    assert!(with.check(&good).is_ok());
    let e = without.check(&good).unwrap_err().to_string();
    assert!(e.contains("unknown key `probe`"), "{e}");
    assert!(e.contains("limits"), "the known keys are listed: {e}");

    let wrong = config("[probe]\ngreeting = 3\n");
    let e = with.check(&wrong).unwrap_err().to_string();
    assert!(e.contains("`probe.greeting`"), "{e}");
    let extra = config("[probe]\ngreeting = \"hi\"\ngreting = \"x\"\n");
    let e = with.check(&extra).unwrap_err().to_string();
    assert!(e.contains("greting"), "{e}");
}

#[test]
fn a_component_links_only_when_its_capability_is_registered() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wat::parse_str(PROBING).unwrap();

    let without = runtime(vec![Arc::new(logs::Logs)], &dir.path().join("a"));
    let e = without
        .compile(&bytes, "probing")
        .err()
        .expect("no probe linked");
    assert!(
        matches!(&e, crate::ComponentError::UnsupportedImport(m) if m.contains("glint:test/probe")),
        "{e}"
    );

    // With the probe, linking passes; the component then fails only for its missing HTTP
    // handler, which is checked after the imports.
    let with = runtime(vec![Arc::new(Probe)], &dir.path().join("b"));
    let e = with
        .compile(&bytes, "probing")
        .err()
        .expect("not an HTTP component");
    assert!(matches!(e, crate::ComponentError::NoHttpHandler(_)), "{e}");
}

#[tokio::test]
async fn an_instance_gets_the_state_its_capability_built_from_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(vec![Arc::new(logs::Logs), Arc::new(Probe)], dir.path());
    let config = config("[probe]\ngreeting = \"hi\"\n");
    let (tenant, function) = ("acme".parse().unwrap(), "hello".parse().unwrap());
    let grants = runtime
        .capabilities
        .prepare(&VersionContext {
            tenant: &tenant,
            function: &function,
            config: &config,
            env: &[],
        })
        .unwrap();
    let lines = Arc::new(Lines::default());
    let grants = Arc::new(grants);
    let invocation = Invocation {
        limits: crate::Limits::default(),
        log: lines.clone(),
        usage: lines.clone(),
        grants: &grants,
        pool: None,
        queue_timeout: Duration::from_secs(1),
    };

    let component = Component::new(&runtime.engine, wat::parse_str(PROBING).unwrap()).unwrap();
    let mut store = runtime.new_store(&invocation);
    store.set_epoch_deadline(1);
    let instance = runtime
        .linker
        .instantiate_async(&mut store, &component)
        .await
        .unwrap();
    let run = instance
        .get_typed_func::<(), (u32,)>(&mut store, "run")
        .unwrap();
    assert_eq!(run.call_async(&mut store, ()).await.unwrap(), (3,));

    let logged = lines.0.lock().unwrap().clone();
    assert_eq!(logged, ["hi from hello #1", "hi from hello #2"]);
    let mut usage = Usage::default();
    store.data().report(&mut usage);
    assert_eq!(usage.outbound_allowed, 2, "the probe reports its calls");

    // A reused instance starts its count over, with the next invocation's log.
    let next = Arc::new(Lines::default());
    store
        .data_mut()
        .restart(&(next.clone() as Arc<dyn LogSink>));
    assert_eq!(store.data_mut().capability::<ProbeState>().state.hits, 0);
    assert!(next.0.lock().unwrap().is_empty());
}
