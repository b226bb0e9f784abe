//! The admin API's JSON bodies and path names, as its handlers check them: never a
//! panic, and accepted alias weights are finite, not negative, and not all zero.
#![no_main]

use glint_node::admin::{AliasBody, EnvBody, NewKey, check_env_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<AliasBody>(data)
        && let Ok(targets) = body.targets()
    {
        assert!(targets.iter().all(|t| t.weight.is_finite() && t.weight >= 0.0));
        assert!(targets.iter().map(|t| t.weight).sum::<f64>() > 0.0);
    }
    if let Ok(key) = serde_json::from_slice::<NewKey>(data) {
        let _ = key.checked();
    }
    let _ = serde_json::from_slice::<EnvBody>(data);
    let text = String::from_utf8_lossy(data);
    let _ = check_env_key(&text);
    let _ = text.parse::<glint_store::FunctionName>();
    let _ = text.parse::<glint_store::VersionId>();
    let _ = text.parse::<glint_store::AliasName>();
});
