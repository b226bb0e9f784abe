//! API keys: how they are made, hashed, and checked on every admin call.
//!
//! A key is `glint_` and 40 random hex digits. Only its sha256 is stored; the node keeps a
//! copy of the live hashes in memory so that checking a key is one map lookup.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use glint_store::{ApiKeyRecord, KeyStore, Role, Store, TenantId};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn generate_key() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("glint_{}", hex::encode(bytes))
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub fn key_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

/// The live keys, by hash.
#[derive(Default)]
pub struct KeyTable(ArcSwap<HashMap<String, ApiKeyRecord>>);

impl KeyTable {
    pub async fn reload(&self, store: &dyn KeyStore) -> glint_store::Result<()> {
        let keys = store.all_key_hashes().await?;
        self.0.store(Arc::new(keys.into_iter().collect()));
        Ok(())
    }

    pub fn check(&self, key: &str) -> Option<ApiKeyRecord> {
        self.0.load().get(&hash_key(key)).cloned()
    }
}

/// Makes sure the node has an admin key, as `glint serve` promises:
/// - `GLINT_ADMIN_KEY`, when set, is an admin key;
/// - else `DIR/admin-key` from an earlier start stays valid;
/// - else, on first start, a new key is made, printed once and written to `DIR/admin-key`.
pub async fn bootstrap_admin_key(
    store: &Arc<dyn Store>,
    data_dir: &Path,
    from_env: Option<String>,
) -> anyhow::Result<()> {
    let tenant = TenantId::default_tenant();
    let path = data_dir.join("admin-key");
    if let Some(key) = from_env.filter(|k| !k.trim().is_empty()) {
        let key = key.trim();
        store
            .create_key(
                &tenant,
                "admin (GLINT_ADMIN_KEY)",
                Role::Admin,
                &hash_key(key),
                &key_prefix(key),
            )
            .await?;
        return Ok(());
    }
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = text.trim();
        if !key.is_empty() {
            store
                .create_key(
                    &tenant,
                    "admin (first start)",
                    Role::Admin,
                    &hash_key(key),
                    &key_prefix(key),
                )
                .await?;
            return Ok(());
        }
    }
    if !store.all_key_hashes().await?.is_empty() {
        return Ok(());
    }
    let key = generate_key();
    store
        .create_key(
            &tenant,
            "admin (first start)",
            Role::Admin,
            &hash_key(&key),
            &key_prefix(&key),
        )
        .await?;
    write_private(&path, &key)?;
    println!(
        "Admin API key (shown once, also saved to {}):\n  {key}",
        path.display()
    );
    Ok(())
}

pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_stably() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with("glint_") && a.len() == 46);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
    }
}
