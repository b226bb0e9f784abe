//! glint.toml: parsing and checking never panic, and what passes is within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(manifest) = glint_runtime::Manifest::parse(&text) else {
        return;
    };
    let name = "fuzzed".parse().expect("a valid name");
    if let Ok(config) = manifest.config(&name) {
        assert!(config.route.starts_with('/'), "route {:?}", config.route);
        assert!(config.limits.memory_mb > 0 && config.limits.timeout_ms > 0);
        assert!(config.scaling.max_concurrency > 0);
        // The capabilities' sections, as a deploy checks them.
        let _ = glint_runtime::capabilities::kv::KvSection::of(&config);
        let _ = glint_runtime::capabilities::outbound::OutboundRules::of(&config);
    }
});
