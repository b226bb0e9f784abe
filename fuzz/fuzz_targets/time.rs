//! Durations (`90s`, `7d`) and the API's time parameters: never a panic or an overflow,
//! and an accepted time lies between the epoch and the year 9999.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = glint_store::parse_duration(&text);
    if let Ok(ms) = glint_node::admin::parse_time("start", &text) {
        assert!((0..=253_402_300_799_999).contains(&ms), "{text:?} gave {ms}");
    }
});
