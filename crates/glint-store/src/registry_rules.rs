//! What every backend's [`crate::Registry`] says the same way: the errors about versions,
//! aliases and routes, so a user sees one text whichever store a node runs on.

use crate::StoreError;
use crate::model::*;

fn describe_versions(list: &[u32]) -> String {
    match list {
        [] => "it has no versions".to_string(),
        [only] => format!("versions: v{only}"),
        [first, .., last] => format!("versions: v{first}..v{last}"),
    }
}

/// The function has no such version; `existing` are the numbers it has, in order.
pub(crate) fn no_version(name: &FunctionName, version: VersionId, existing: &[u32]) -> StoreError {
    StoreError::NotFound(format!(
        "function '{name}' has no version '{version}'; {}",
        describe_versions(existing)
    ))
}

pub(crate) fn no_alias(name: &FunctionName, alias: &AliasName) -> StoreError {
    StoreError::NotFound(format!("function '{name}' has no alias '{alias}'"))
}

pub(crate) fn no_env(name: &FunctionName, key: &str) -> StoreError {
    StoreError::NotFound(format!(
        "function '{name}' has no env var '{key}' set through the API"
    ))
}

/// A version cannot go while an alias points to it.
pub(crate) fn version_in_use(name: &FunctionName, alias: &str, version: VersionId) -> StoreError {
    StoreError::Conflict(format!(
        "alias '{alias}' of function '{name}' points to {version}; move it first \
         (`glint alias set {name} {alias} ...`) or delete the whole function"
    ))
}

/// Another function serves the route.
pub(crate) fn route_taken(route: &str, owner: &str) -> StoreError {
    StoreError::Conflict(format!(
        "route '{route}' is already served by function '{owner}'; pick another `route` in glint.toml"
    ))
}
