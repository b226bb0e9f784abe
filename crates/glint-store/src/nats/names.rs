//! Names on NATS: buckets, streams and keys, in one place. Every name Glint gives NATS
//! comes from here, so two tenants' or two stores' names can never meet.

use crate::{KvStoreName, TenantId};

/// The bucket of one tenant's KV store. The tenant's length comes first, so no two
/// (tenant, store) pairs give one name even though both may hold `_`.
pub(crate) fn user_bucket(ns: &str, tenant: &TenantId, store: &KvStoreName) -> String {
    format!("{ns}_u_{}_{tenant}_{store}", tenant.as_str().len())
}

/// The prefix shared by the buckets of one tenant's stores.
pub(crate) fn user_bucket_prefix(ns: &str, tenant: &TenantId) -> String {
    format!("{ns}_u_{}_{tenant}_", tenant.as_str().len())
}

/// A user's key (any string) as a NATS KV key (`[-/_=.A-Za-z0-9]+`): letters, digits,
/// `-` and `_` stay; every other byte becomes `=HH`. Reversible, and no `.`, so a key is
/// one subject token.
pub(crate) fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// The user's key back from [`escape_key`]; `None` for a key Glint did not write.
pub(crate) fn unescape_key(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_stay_one_token() {
        for key in ["plain", "a.b/c", "ünïcode ✓", "=41", "with space", "-_-"] {
            let escaped = escape_key(key);
            assert!(
                escaped
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{escaped}"
            );
            assert_eq!(unescape_key(&escaped).as_deref(), Some(key));
        }
        assert_eq!(unescape_key("bad=4"), None);
    }

    #[test]
    fn buckets_of_different_pairs_differ() {
        let t = |s: &str| s.parse::<TenantId>().unwrap();
        let s = |s: &str| s.parse::<KvStoreName>().unwrap();
        assert_ne!(
            user_bucket("glint", &t("a_b"), &s("c")),
            user_bucket("glint", &t("a"), &s("b_c"))
        );
        assert!(
            user_bucket("glint", &t("a"), &s("b"))
                .starts_with(&user_bucket_prefix("glint", &t("a")))
        );
    }
}
