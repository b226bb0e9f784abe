//! API keys: how they are made, hashed, and checked on every admin call.
//!
//! A key is `glint_` and 40 random hex digits. Only its sha256 is stored; the node keeps a
//! copy of the live hashes in memory so that checking a key is one map lookup.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use glint_store::{ApiKeyRecord, KeyStore, Role, TenantId};
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

    /// Whether the key with this id is still live (for callers that hold on, such as a
    /// log follower).
    pub fn is_live(&self, key_id: &str) -> bool {
        self.0.load().values().any(|k| k.id == key_id)
    }
}

/// The shortest key `GLINT_ADMIN_KEY` may hold: a guessable admin key is a node given away.
pub const MIN_KEY_CHARS: usize = 32;

const ENV_KEY_NAME: &str = "admin (GLINT_ADMIN_KEY)";
const FIRST_KEY_NAME: &str = "admin (first start)";

/// Makes sure the node has an operator key (the role above every tenant's admin), as
/// `glint serve` promises, without ever bringing a revoked key back:
/// - `GLINT_ADMIN_KEY`, when set, is an operator key (unless it was revoked); a new value
///   revokes the key the previous value made;
/// - on the very first start (no key was ever made) without it, a new key is made,
///   printed once and written to `DIR/admin-key`. Later starts only read the store.
///
/// A store from before the operator role has the node's own key as an admin: while no
/// live key is an operator, the key that `GLINT_ADMIN_KEY` or `DIR/admin-key` holds (by
/// its hash, never by a name another admin could give a key) becomes one.
pub async fn bootstrap_admin_key(
    store: &dyn KeyStore,
    data_dir: &Path,
    from_env: Option<String>,
) -> anyhow::Result<()> {
    let from_file = std::fs::read_to_string(data_dir.join("admin-key")).ok();
    let own: Vec<String> = [from_env.as_deref(), from_file.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(hash_key)
        .collect();
    make_node_key(store, data_dir, from_env).await?;
    let operator_exists =
        |keys: &[(String, ApiKeyRecord)]| keys.iter().any(|(_, k)| k.role == Role::Operator);
    let keys = store.all_key_hashes().await?;
    if operator_exists(&keys) {
        return Ok(());
    }
    let default = TenantId::default_tenant();
    for (_, key) in keys
        .iter()
        .filter(|(hash, k)| own.contains(hash) && k.tenant == default && k.role == Role::Admin)
    {
        if let Err(e) = store.set_key_role(&default, &key.id, Role::Operator).await {
            // Another node starting at the same time may have promoted it first.
            if operator_exists(&store.all_key_hashes().await?) {
                return Ok(());
            }
            return Err(e.into());
        }
        tracing::warn!(key = %key.id, name = %key.name, "this node's own key is now an operator key (the role above every tenant's admin)");
    }
    Ok(())
}

async fn make_node_key(
    store: &dyn KeyStore,
    data_dir: &Path,
    from_env: Option<String>,
) -> anyhow::Result<()> {
    let tenant = TenantId::default_tenant();
    if let Some(key) = from_env.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        anyhow::ensure!(
            key.chars().count() >= MIN_KEY_CHARS,
            "GLINT_ADMIN_KEY is {} characters long; an admin key needs at least {MIN_KEY_CHARS}. \
             Make one with `openssl rand -hex 32`, or unset GLINT_ADMIN_KEY to have the node make one",
            key.chars().count()
        );
        let hash = hash_key(key);
        let made = store
            .create_key(
                &tenant,
                ENV_KEY_NAME,
                Role::Operator,
                &hash,
                &key_prefix(key),
            )
            .await?;
        for old in store.keys(&tenant).await? {
            if old.name == ENV_KEY_NAME && old.id != made.id {
                store.revoke_key(&tenant, &old.id).await?;
                tracing::warn!(key = %old.id, prefix = %old.prefix, "GLINT_ADMIN_KEY changed: the key its previous value made is revoked");
            }
        }
        if !store
            .all_key_hashes()
            .await?
            .iter()
            .any(|(h, _)| *h == hash)
        {
            tracing::warn!(
                "GLINT_ADMIN_KEY holds a key that was revoked; it stays revoked. Set a new value to get an admin key"
            );
        }
        return Ok(());
    }
    if store.any_key_made().await? {
        return Ok(());
    }
    let path = data_dir.join("admin-key");
    let key = generate_key();
    write_private(&path, &key)?;
    store
        .create_key(
            &tenant,
            FIRST_KEY_NAME,
            Role::Operator,
            &hash_key(&key),
            &key_prefix(&key),
        )
        .await?;
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
