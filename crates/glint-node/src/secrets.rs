//! Secrets: sealed with the node's secret key before they reach the store, opened only
//! to build the environment of the functions whose manifest names them.
//!
//! The key lives outside the database: `GLINT_SECRET_KEY` (64 hex digits), or a file
//! (`--secret-key-file`, by default `<data dir>/secret.key`, mode 0600) made on first
//! start. Every node that shares a store must share the key. Values are sealed with
//! XChaCha20-Poly1305 under a random nonce, bound to their tenant and name, so a sealed
//! value copied onto another secret's row does not open.

use std::path::Path;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use glint_store::TenantId;

/// Format byte in front of every sealed value, so the scheme can change later.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    raw: [u8; 32],
}

impl SecretKey {
    /// The key from `GLINT_SECRET_KEY`, else from `path`, else a new one written to `path`.
    pub fn load_or_create(from_env: Option<&str>, path: &Path) -> anyhow::Result<Self> {
        if let Some(hex_key) = from_env.map(str::trim).filter(|k| !k.is_empty()) {
            return Self::from_hex(hex_key).context("GLINT_SECRET_KEY");
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(text.trim())
                .with_context(|| format!("secret key file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                crate::keys::write_private(path, &hex::encode(key)).with_context(|| {
                    format!("cannot write the secret key file {}", path.display())
                })?;
                tracing::info!(path = %path.display(), "made a new secret key; back it up apart from the data dir");
                Ok(Self {
                    cipher: XChaCha20Poly1305::new(&key),
                    raw: key.into(),
                })
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn from_hex(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text)
            .ok()
            .filter(|b| b.len() == 32)
            .context("the secret key must be 64 hex digits (32 bytes)")?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&bytes);
        Ok(Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
            raw,
        })
    }

    /// A key for another purpose, derived from this one (HMAC-SHA256 of the purpose), so
    /// one secret kept apart from the data dir protects more than secrets.
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.raw)
            .expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn seal(&self, tenant: &TenantId, name: &str, value: &str) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = aad(tenant, name);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory inputs");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The value, or `None` if it was sealed under another key, name or tenant.
    pub fn open(&self, tenant: &TenantId, name: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT {
            return None;
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let aad = aad(tenant, name);
        let plain = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

fn aad(tenant: &TenantId, name: &str) -> Vec<u8> {
    format!("glint-secret\0{tenant}\0{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key_tenant_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let key = SecretKey::load_or_create(None, &path).unwrap();
        let t = TenantId::default_tenant();
        let sealed = key.seal(&t, "API_TOKEN", "s3cr3t-value");
        assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"));
        assert_eq!(
            key.open(&t, "API_TOKEN", &sealed).as_deref(),
            Some("s3cr3t-value")
        );
        assert_eq!(key.open(&t, "OTHER", &sealed), None);
        // The same file gives the same key; another key opens nothing.
        let again = SecretKey::load_or_create(None, &path).unwrap();
        assert!(again.open(&t, "API_TOKEN", &sealed).is_some());
        let other = SecretKey::load_or_create(Some(&"ab".repeat(32)), &path).unwrap();
        assert_eq!(other.open(&t, "API_TOKEN", &sealed), None);
        assert!(SecretKey::load_or_create(Some("short"), &path).is_err());
    }
}
