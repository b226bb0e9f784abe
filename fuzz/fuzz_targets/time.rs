//! The API's time parameters (`90s`, `2h 30m`, epoch milliseconds): never a panic or an
//! overflow, and an accepted time lies between the epoch and the year 9999.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ms) = glint_node::admin::parse_time("start", &text) {
        assert!((0..=253_402_300_799_999).contains(&ms), "{text:?} gave {ms}");
    }
});
