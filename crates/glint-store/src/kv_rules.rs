//! What every KV backend enforces the same way, with the same words: key and value sizes,
//! batch sizes, a missing store, and the arithmetic of `increment`.

use crate::{KvLimits, KvStoreName, Result, StoreError};

pub(crate) fn check_key(limits: &KvLimits, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::Invalid("a KV key cannot be empty".into()));
    }
    if key.len() > limits.max_key_bytes {
        return Err(StoreError::Limit(format!(
            "the key is {} bytes; keys may be at most {} bytes",
            key.len(),
            limits.max_key_bytes
        )));
    }
    Ok(())
}

pub(crate) fn check_value(limits: &KvLimits, key: &str, value: &[u8]) -> Result<()> {
    check_key(limits, key)?;
    if value.len() > limits.max_value_bytes {
        return Err(StoreError::Limit(format!(
            "the value for key '{key}' is {} bytes; values may be at most {} bytes",
            value.len(),
            limits.max_value_bytes
        )));
    }
    Ok(())
}

pub(crate) fn check_batch(limits: &KvLimits, n: usize) -> Result<()> {
    if n > limits.max_batch {
        return Err(StoreError::Limit(format!(
            "the batch has {n} keys; a batch may hold at most {}",
            limits.max_batch
        )));
    }
    Ok(())
}

pub(crate) fn no_store(store: &KvStoreName) -> StoreError {
    StoreError::NotFound(format!(
        "KV store '{store}' does not exist; name it under [kv] stores in a function's glint.toml \
         and deploy, or `glint kv stores` to see the stores"
    ))
}

/// The embedded backend's own measure; JetStream's server measures its buckets itself.
#[cfg(feature = "sqlite")]
pub(crate) fn full(store: &KvStoreName, after: u64, quota: u64) -> StoreError {
    StoreError::Limit(format!(
        "KV store '{store}' is full: this write would make it {after} bytes, over its quota \
         of {quota} bytes; delete keys to make room"
    ))
}

/// The value `increment` writes: the key's decimal value (missing counts as 0) plus `delta`.
pub(crate) fn incremented(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64> {
    let current = match current {
        None => 0,
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "the value of key '{key}' is not a decimal integer, so it cannot be incremented"
                ))
            })?,
    };
    current.checked_add(delta).ok_or_else(|| {
        StoreError::Invalid(format!("incrementing key '{key}' by {delta} overflows"))
    })
}
