//! The records Glint keeps, and the typed names that identify them.
//!
//! Every record carries its tenant. Names are validated once, when they enter the system,
//! so the rest of the code can trust a `FunctionName` to be safe in a route, a path or a key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The tenant a single-user node runs everything under.
pub const DEFAULT_TENANT: &str = "default";

/// The alias a deploy moves unless told otherwise, and the one the data plane serves.
pub const LATEST_ALIAS: &str = "latest";

fn check_name(kind: &str, value: &str, max: usize) -> Result<(), StoreError> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let starts_ok = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    if value.is_empty() || value.len() > max || !ok_chars || !starts_ok {
        return Err(StoreError::InvalidName(format!(
            "{kind} name {value:?} is invalid: use 1 to {max} ASCII letters, digits, '-' or '_', \
             starting with a letter or digit"
        )));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                check_name($kind, s, $max)?;
                Ok(Self(s.to_string()))
            }
        }

        impl TryFrom<String> for $ty {
            type Error = StoreError;
            fn try_from(s: String) -> Result<Self, StoreError> {
                check_name($kind, &s, $max)?;
                Ok(Self(s))
            }
        }

        // Hash and Eq are the inner string's, so maps keyed by names can be looked up
        // with a plain `&str`, without allocating.
        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                name_schema($kind, $max)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $ty {}
    };
}

/// A name's schema: what [`check_name`] accepts.
#[cfg(feature = "openapi")]
fn name_schema(kind: &str, max: usize) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(format!(
            "A {kind} name: 1 to {max} ASCII letters, digits, '-' or '_', starting with a letter or digit"
        )))
        .pattern(Some(NAME_PATTERN))
        .min_length(Some(1))
        .max_length(Some(max))
        .into()
}

/// [`check_name`] as a regular expression.
#[cfg(feature = "openapi")]
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]*$";

name_type!(
    /// A tenant: owns functions, KV stores, keys and logs.
    TenantId, "tenant", 63
);
name_type!(
    /// A function's name, unique within its tenant.
    FunctionName, "function", 63
);
name_type!(
    /// An alias such as `latest`, `live` or `canary`.
    AliasName, "alias", 63
);
name_type!(
    /// A KV store of a tenant, such as `counters` or `sessions`.
    KvStoreName, "KV store", 63
);

impl TenantId {
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_string())
    }

    /// A new tenant's name, which must also be a DNS label (it names hosts such as
    /// `<function>.<tenant>.example.com`): 1 to 63 of `a-z`, `0-9` and '-', with no '-'
    /// at either end. Tenants made before this rule keep their names.
    pub fn new_tenant(name: &str) -> Result<Self, StoreError> {
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if name.is_empty()
            || name.len() > 63
            || !ok_chars
            || name.starts_with('-')
            || name.ends_with('-')
        {
            return Err(StoreError::InvalidName(format!(
                "tenant name {name:?} is invalid: use 1 to 63 lowercase letters, digits or '-', \
                 not starting or ending with '-' (it becomes part of host names)"
            )));
        }
        Ok(Self(name.to_string()))
    }
}

/// Whether a tenant's functions serve.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    /// Being deleted: nothing serves and no key works; deleting it again finishes.
    Deleting,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleting => "deleting",
        }
    }
}

impl FromStr for TenantStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            "deleting" => Ok(TenantStatus::Deleting),
            _ => Err(StoreError::Invalid(format!(
                "tenant status {s:?} is not known"
            ))),
        }
    }
}

/// A tenant: the owner of functions, KV stores, secrets, keys, logs and usage.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub status: TenantStatus,
    pub created_at_ms: i64,
    /// The quotas the operator set for this tenant; the others are the node's defaults.
    #[serde(default)]
    pub quotas: Quotas,
}

/// What a tenant may have and use; `None` is no limit (in a tenant's record: the
/// default).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
///
/// Read leniently (a quota a newer node stored is ignored); the API refuses unknown
/// ones by name.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Quotas {
    /// Functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<u64>,
    /// Versions kept of each function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_per_function: Option<u64>,
    /// Bytes of the distinct components its versions hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_bytes: Option<u64>,
    /// Requests per second its functions take on each node (a token bucket holding a
    /// second's worth); past it, 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u64>,
    /// Instances its functions run at once on each node; past it (after the function's
    /// queue time), 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances_per_node: Option<u64>,
}

impl Quotas {
    /// A tenant's quotas where the operator set none; `default`, the operator's own
    /// tenant, has none unless set.
    pub fn defaults_for(tenant: &TenantId) -> Quotas {
        if tenant.as_str() == DEFAULT_TENANT {
            return Quotas::default();
        }
        Quotas {
            functions: Some(100),
            versions_per_function: Some(20),
            component_bytes: Some(1 << 30),
            requests_per_second: Some(1000),
            // A quarter of a node's default --max-instances.
            instances_per_node: Some(250),
        }
    }

    /// These quotas, with `defaults` where none is set.
    pub fn or(self, defaults: Quotas) -> Quotas {
        Quotas {
            functions: self.functions.or(defaults.functions),
            versions_per_function: self
                .versions_per_function
                .or(defaults.versions_per_function),
            component_bytes: self.component_bytes.or(defaults.component_bytes),
            requests_per_second: self.requests_per_second.or(defaults.requests_per_second),
            instances_per_node: self.instances_per_node.or(defaults.instances_per_node),
        }
    }
}

impl TenantRecord {
    /// The quotas that hold for the tenant: its own, then the defaults.
    pub fn effective_quotas(&self) -> Quotas {
        self.quotas.or(Quotas::defaults_for(&self.id))
    }
}

/// What deleting a tenant removed from the store of records.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Removed {
    pub functions: u64,
    pub versions: u64,
    /// Distinct components stored, and their bytes.
    pub components: u64,
    pub component_bytes: u64,
    pub secrets: u64,
    /// API keys, revoked ones included.
    pub keys: u64,
    /// Rows on SQLite; stored messages (a flush's lines of one function) on NATS.
    pub log_records: u64,
    /// Rows (a function's minute) on SQLite; stored messages (a flush) on NATS.
    pub usage_records: u64,
    /// Regions whose logs and usage could not be reached: they are deleted there by
    /// deleting the tenant again once the region answers.
    pub pending_regions: Vec<String>,
}

/// What deleting a tenant's KV stores removed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KvRemoved {
    pub stores: u64,
    pub keys: u64,
    pub bytes: u64,
}

impl AliasName {
    pub fn latest() -> Self {
        Self(LATEST_ALIAS.to_string())
    }
}

/// One immutable deploy of a function, numbered from 1 within the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionId(pub u32);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for VersionId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .description(Some("A version's number: 3 for v3"))
            .minimum(Some(1))
            .maximum(Some(u32::MAX))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for VersionId {}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl FromStr for VersionId {
    type Err = StoreError;
    /// Accepts `3` and `v3`.
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let digits = s.strip_prefix('v').unwrap_or(s);
        match digits.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Self(n)),
            _ => Err(StoreError::InvalidName(format!(
                "version {s:?} is invalid: versions look like 'v3' or '3'"
            ))),
        }
    }
}

/// What an API key may do. Each role includes the ones below it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read functions, versions, logs and metrics.
    Read,
    /// Also deploy, delete, move aliases and set env vars.
    Deploy,
    /// Also manage API keys.
    Admin,
    /// Also manage tenants: the node's own, above every tenant's admin.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Deploy => "deploy",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }
}

impl FromStr for Role {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "read" => Ok(Role::Read),
            "deploy" => Ok(Role::Deploy),
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            _ => Err(StoreError::InvalidName(format!(
                "role {s:?} is invalid: use operator, admin, deploy or read"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionRecord {
    pub tenant: TenantId,
    pub name: FunctionName,
    /// The path prefix the data plane serves the function under, e.g. `/hello`.
    pub route: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VersionRecord {
    pub tenant: TenantId,
    pub function: FunctionName,
    pub version: VersionId,
    /// Hex sha256 of the component's bytes, which are stored once per tenant.
    pub sha256: String,
    pub size: u64,
    /// The manifest (`glint.toml`) that came with the deploy, as text.
    pub manifest: String,
    /// The HTTP world the component speaks, as the engine names it at deploy
    /// (`wasi-0.2` or `wasi-0.3`).
    pub world: String,
    pub created_at_ms: i64,
}

/// The world of a version recorded before Glint told worlds apart: only WASI 0.2 was
/// accepted then.
pub const OLDEST_WORLD: &str = "wasi-0.2";

/// One version an alias points to, with its share of the traffic.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AliasTarget {
    pub version: VersionId,
    pub weight: f64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AliasRecord {
    pub name: AliasName,
    pub targets: Vec<AliasTarget>,
    pub updated_at_ms: i64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to tell keys apart in listings.
    pub prefix: String,
    pub created_at_ms: i64,
}

impl ApiKeyRecord {
    /// A new key's record, made now; its id comes from its hash, so storing the same key
    /// twice gives one record.
    pub fn new(tenant: &TenantId, name: &str, role: Role, key_hash: &str, prefix: &str) -> Self {
        ApiKeyRecord {
            id: format!("key_{}", &key_hash[..12]),
            tenant: tenant.clone(),
            name: name.to_string(),
            role,
            prefix: prefix.to_string(),
            created_at_ms: now_ms(),
        }
    }
}

/// Severity of a log line, parsed from a guest's prefix or given by the host.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl FromStr for Level {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(StoreError::InvalidName(format!(
                "level {s:?} is invalid: use trace, debug, info, warn or error"
            ))),
        }
    }
}

/// One line a guest (or the host, about a guest) wrote during one invocation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogRecord {
    pub ts_ms: i64,
    pub tenant: TenantId,
    pub function: FunctionName,
    pub version: VersionId,
    pub execution_id: String,
    pub level: Level,
    /// `stdout`, `stderr` or `host`.
    pub stream: String,
    pub message: String,
    /// The node and region that ran the invocation.
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub region: String,
}

/// Which log lines to read back: the newest `lines` that match, in time order (or
/// newest first with `newest_first`).
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub function: Option<FunctionName>,
    pub version: Option<VersionId>,
    pub execution_id: Option<String>,
    /// From this time on (inclusive).
    pub since_ms: Option<i64>,
    /// Before this time (exclusive).
    pub until_ms: Option<i64>,
    pub min_level: Option<Level>,
    pub node: Option<String>,
    pub region: Option<String>,
    pub lines: usize,
    /// The oldest matching lines instead of the newest.
    pub oldest_first: bool,
}

/// What an invocation used, summed per function, version and minute.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UsageRecord {
    pub function: FunctionName,
    pub version: VersionId,
    /// Start of the minute, in ms since the epoch.
    pub minute_ms: i64,
    pub requests: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub wall_ms: u64,
    pub cpu_us: u64,
    /// Peak memory times wall time, in KiB·ms: the basis of GB-seconds.
    pub memory_kib_ms: u64,
    /// The region whose nodes served these requests, as the store read them back (the
    /// NATS backend in a supercluster); empty where the store keeps no region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

impl UsageRecord {
    /// Adds another record's counts to this one's (the function, version, minute and
    /// region stay this one's).
    pub fn add(&mut self, other: &UsageRecord) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.wall_ms += other.wall_ms;
        self.cpu_us += other.cpu_us;
        self.memory_kib_ms += other.memory_kib_ms;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_usage_records_sums_every_count_and_keeps_the_key() {
        let record = |n: u64, minute_ms: i64| UsageRecord {
            function: "hello".parse().unwrap(),
            version: VersionId(1),
            minute_ms,
            requests: n,
            errors: n + 1,
            bytes_in: n + 2,
            bytes_out: n + 3,
            wall_ms: n + 4,
            cpu_us: n + 5,
            memory_kib_ms: n + 6,
            region: "eu".into(),
        };
        let mut sum = record(10, 60_000);
        sum.add(&record(100, 120_000));
        let mut expected = record(110, 60_000);
        // Each count is n + k in both, so the sum's is 110 + 2k.
        expected.errors = 112;
        expected.bytes_in = 114;
        expected.bytes_out = 116;
        expected.wall_ms = 118;
        expected.cpu_us = 120;
        expected.memory_kib_ms = 122;
        assert_eq!(sum, expected);
    }

    #[test]
    fn function_names_reject_paths_and_control_characters() {
        for bad in [
            "",
            "a/b",
            "..",
            "../x",
            "a\u{7}b",
            "a b",
            "-x",
            &"x".repeat(64),
        ] {
            assert!(
                bad.parse::<FunctionName>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        for good in ["hello", "Hello-2", "a_b", "9lives"] {
            assert!(
                good.parse::<FunctionName>().is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!("v3".parse::<VersionId>().unwrap(), VersionId(3));
        assert_eq!("3".parse::<VersionId>().unwrap(), VersionId(3));
        assert!("v0".parse::<VersionId>().is_err());
        assert!("latest".parse::<VersionId>().is_err());
    }
}

/// A KV store as `glint kv stores` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KvStoreRecord {
    pub name: KvStoreName,
    pub keys: u64,
    /// Keys plus values, the measure the quota counts.
    pub bytes: u64,
    pub created_at_ms: i64,
}

/// One page of keys, in key order, and where the next page starts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// The last key of this page when more follow; pass it back to get the next page.
    pub cursor: Option<String>,
}

/// A value with the version a compare-and-swap checks against.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: i64,
}

/// What KV enforces on every write, from any caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Keys plus values in one store.
    pub store_quota_bytes: u64,
    /// Keys in one batch call.
    pub max_batch: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 512,
            max_value_bytes: 1024 * 1024,
            store_quota_bytes: 64 * 1024 * 1024,
            max_batch: 1000,
        }
    }
}

/// A secret as the API shows it: its name, never its value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecretRecord {
    pub name: String,
    pub updated_at_ms: i64,
}
