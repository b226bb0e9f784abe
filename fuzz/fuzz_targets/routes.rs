//! Route matching: routes on every line but the last, the request path on the last. A
//! match is always a whole-segment prefix of the path, and the guest's path is the rest.
//! The last line is also read as a `Host`: a function's host names a function and a
//! tenant, neither empty nor holding a dot.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use glint_node::routes::{FunctionEntry, HostTarget, RouteTable, host_target};
use glint_store::TenantId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<&str> = text.lines().collect();
    let Some(path) = lines.pop() else { return };
    let entries = lines
        .iter()
        .filter(|r| r.starts_with('/'))
        .take(64)
        .enumerate()
        .map(|(i, route)| {
            Arc::new(FunctionEntry::new(
                TenantId::default_tenant(),
                format!("f{i}").parse().expect("a valid name"),
                route.to_string(),
                HashMap::new(),
                HashMap::new(),
            ))
        });
    let table = RouteTable::from_entries(entries);
    if let Some((entry, rest)) = table.resolve(glint_store::DEFAULT_TENANT, path) {
        assert!(path.starts_with(entry.route.as_str()), "{path:?} {:?}", entry.route);
        assert_eq!(rest, &path[entry.route.len()..]);
        assert!(rest.is_empty() || rest.starts_with('/'), "{rest:?}");
    }
    match host_target(Some(path), Some("fn.example.com")) {
        HostTarget::Function { tenant, name } => {
            for part in [&tenant, &name] {
                assert!(!part.is_empty() && !part.contains('.'), "{path:?}: {part:?}");
            }
        }
        HostTarget::Tenant(tenant) => assert!(!tenant.is_empty() && !tenant.contains('.'), "{path:?}"),
    }
});
