//! Names on NATS: buckets, streams and keys, in one place. Every name Glint gives NATS
//! comes from here, so two tenants' or two stores' names can never meet.

use crate::{FunctionName, KvStoreName, TenantId, VersionId};

/// The bucket of one tenant's KV store. The tenant's length comes first, so no two
/// (tenant, store) pairs give one name even though both may hold `_`.
pub(crate) fn user_bucket(ns: &str, tenant: &TenantId, store: &KvStoreName) -> String {
    format!("{ns}_u_{}_{tenant}_{store}", tenant.as_str().len())
}

/// Functions, route claims, API keys and secrets.
pub(crate) fn registry_bucket(ns: &str) -> String {
    format!("{ns}_registry")
}

/// Node heartbeats and readiness.
pub(crate) fn nodes_bucket(ns: &str) -> String {
    format!("{ns}_nodes")
}

/// Component bytes.
pub(crate) fn artifacts_bucket(ns: &str) -> String {
    format!("{ns}_artifacts")
}

/// A region's name as one token of a stream name or subject.
pub(crate) fn region_token(region: &str) -> String {
    region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a region's stream of events holds.
#[derive(Clone, Copy)]
pub(crate) enum Events {
    Logs,
    Usage,
}

impl Events {
    fn word(self) -> &'static str {
        match self {
            Events::Logs => "logs",
            Events::Usage => "usage",
        }
    }
}

/// The stream of `region`'s events (a lone server's, without a region).
pub(crate) fn events_stream(ns: &str, events: Events, region: Option<&str>) -> String {
    let kind = events.word();
    match region {
        Some(r) => format!("{ns}_{kind}_at_{}", region_token(r)),
        None => format!("{ns}_{kind}"),
    }
}

/// Every subject of `region`'s events: `<ns>.r<kind>.<region>.<tenant>.<function>`, or
/// `<ns>.<kind>.<tenant>.<function>` without a region.
pub(crate) fn events_subjects(ns: &str, events: Events, region: Option<&str>) -> String {
    events_subject(ns, events.word(), region.map(region_token).as_deref(), ">")
}

/// The subject of a function's events (`function` may be `*`); `region` `Some("*")`
/// matches every region's.
pub(crate) fn function_events(
    ns: &str,
    events: Events,
    region: Option<&str>,
    tenant: &TenantId,
    function: &str,
) -> String {
    events_subject(
        ns,
        events.word(),
        region.map(region_token_or_any).as_deref(),
        &format!("{tenant}.{function}"),
    )
}

fn region_token_or_any(region: &str) -> String {
    if region == "*" {
        "*".into()
    } else {
        region_token(region)
    }
}

fn events_subject(ns: &str, kind: &str, region: Option<&str>, rest: &str) -> String {
    match region {
        Some(r) => format!("{ns}.r{kind}.{r}.{rest}"),
        None => format!("{ns}.{kind}.{rest}"),
    }
}

/// A region's listing in the registry.
pub(crate) fn region_key(region: &str) -> String {
    format!("region.{}", escape_key(region))
}

/// A function's document in the registry bucket.
pub(crate) fn function_key(tenant: &TenantId, function: &FunctionName) -> String {
    format!("fn.{tenant}.{function}")
}

/// A tenant's claim on one of its routes, which hold `/`, `.` and other bytes NATS
/// keys cannot.
pub(crate) fn route_key(tenant: &TenantId, route: &str) -> String {
    format!("route.{tenant}.{}", escape_key(route))
}

/// A tenant's record in the registry.
pub(crate) fn tenant_key(tenant: &TenantId) -> String {
    format!("tenant.{tenant}")
}

/// An API key's record, by tenant and id.
pub(crate) fn api_key_key(tenant: &TenantId, id: &str) -> String {
    format!("apikey.{tenant}.{}", escape_key(id))
}

/// A secret's sealed value.
pub(crate) fn secret_key(tenant: &TenantId, name: &str) -> String {
    format!("secret.{tenant}.{}", escape_key(name))
}

/// A tenant's KV store, as the registry lists it (its data is in [`user_bucket`]).
pub(crate) fn kv_store_key(tenant: &TenantId, store: &KvStoreName) -> String {
    format!("kvs.{tenant}.{store}")
}

/// A node's heartbeat; node ids may hold `.`.
pub(crate) fn node_key(node: &str) -> String {
    format!("node.{}", escape_key(node))
}

/// That `node` serves `version` of a function.
pub(crate) fn ready_key(
    tenant: &TenantId,
    function: &FunctionName,
    version: VersionId,
    node: &str,
) -> String {
    format!(
        "ready.{tenant}.{function}.{}.{}",
        version.0,
        escape_key(node)
    )
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
    fn each_region_has_its_own_event_subjects() {
        let t: TenantId = "acme".parse().unwrap();
        let (logs, usage) = (Events::Logs, Events::Usage);
        assert_eq!(
            events_stream("g", logs, Some("eu west")),
            "g_logs_at_eu_west"
        );
        assert_eq!(events_subjects("g", logs, Some("eu")), "g.rlogs.eu.>");
        let subject = function_events("g", logs, Some("eu"), &t, "hello");
        assert_eq!(subject, "g.rlogs.eu.acme.hello");
        let every = function_events("g", logs, Some("*"), &t, "*");
        assert_eq!(every, "g.rlogs.*.acme.*");
        let lone = function_events("g", usage, None, &t, "hello");
        assert_eq!(lone, "g.usage.acme.hello");
        assert_eq!(events_stream("g", usage, None), "g_usage");
    }

    #[test]
    fn buckets_of_different_pairs_differ() {
        let t = |s: &str| s.parse::<TenantId>().unwrap();
        let s = |s: &str| s.parse::<KvStoreName>().unwrap();
        assert_ne!(
            user_bucket("glint", &t("a_b"), &s("c")),
            user_bucket("glint", &t("a"), &s("b_c"))
        );
    }
}
