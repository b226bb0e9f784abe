//! photoniq.toml: turning it into a Glint manifest never panics, and the result checks
//! like any glint.toml.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(manifest) = glint_runtime::photoniq::to_manifest(&text) {
        let name = "fuzzed".parse().expect("a valid name");
        let _ = manifest.config(&name);
    }
});
