//! `[outbound]` entries, one per line: parsing never panics, and any address text that
//! parses is classified without panicking.
#![no_main]

use glint_runtime::capabilities::outbound::{OutboundRules, OutboundSection, is_internal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    for line in &lines {
        if let Ok(ip) = line.trim().parse() {
            let _ = is_internal(ip);
        }
    }
    let section = OutboundSection {
        allowed_hosts: lines.clone(),
        allowed_methods: Some(lines),
        max_requests: None,
        timeout_ms: None,
    };
    let _ = OutboundRules::from_manifest(Some(&section));
});
