//! Spin applications: `glint deploy` in a folder with a `spin.toml` (manifest version 2)
//! and no `glint.toml` deploys each component an HTTP trigger routes to as a function of
//! the same name, with a glint.toml made from its part of spin.toml:
//! - `[[trigger.http]] route` (with `[application.trigger.http] base`) is the route; a
//!   trailing `/...` is dropped, since a Glint route is a prefix;
//! - `source` is the component, after `[component.<id>.build] command` ran in its
//!   `workdir`;
//! - `allowed_outbound_hosts` becomes `[outbound] allowed_hosts` (the same
//!   `scheme://host:port` syntax with `*`), `key_value_stores` `[kv] stores` (Spin's
//!   "default" is the tenant's store named `default`), `environment` `[env]`;
//! - `[component.<id>.variables]` become env vars of the same names, which Spin's
//!   `variables` interface reads, with `{{ name }}` resolved from `[variables]`: a
//!   default, or the deploying shell's `SPIN_VARIABLE_<NAME>` as Spin's environment
//!   provider reads it;
//! - `[http] style = "spin"`: the guest sees the whole path and Spin's `spin-*` headers,
//!   as under Spin.
//!
//! Every other key is refused, naming it, rather than silently dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glint_runtime::Manifest;
use glint_runtime::manifest::HttpSection;
use toml::Value;

/// One function to deploy from a Spin application.
pub struct SpinFunction {
    pub name: String,
    /// The glint.toml the node receives, as text.
    pub manifest: String,
    pub component: PathBuf,
    /// `[component.<id>.build]`: the command and the folder it runs in.
    pub build: Option<(String, PathBuf)>,
}

/// Whether `dir` holds a Spin application and no glint.toml (which wins).
pub fn is_spin_app(dir: &Path) -> bool {
    dir.join("spin.toml").is_file() && !dir.join("glint.toml").exists()
}

fn table<'a>(value: &'a Value, key: &str) -> Result<&'a toml::Table> {
    value
        .as_table()
        .with_context(|| format!("spin.toml: `{key}` must be a table"))
}

fn refuse_unknown(table: &toml::Table, at: &str, known: &[&str]) -> Result<()> {
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            let name = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            bail!(
                "spin.toml: `{name}` is not supported by Glint (it reads {}); remove it, or deploy \
                 with a glint.toml of your own",
                known.join(", ")
            );
        }
    }
    Ok(())
}

fn string_list(value: Option<&Value>, key: &str) -> Result<Vec<String>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .as_array()
        .with_context(|| format!("spin.toml: `{key}` must be a list of strings"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .with_context(|| format!("spin.toml: `{key}` must be a list of strings"))
        })
        .collect()
}

/// The application's variables: name → value, from a default or the environment.
fn app_variables(
    root: &toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    let Some(vars) = root.get("variables") else {
        return Ok(out);
    };
    for (name, spec) in table(vars, "variables")? {
        let spec = table(spec, &format!("variables.{name}"))?;
        refuse_unknown(
            spec,
            &format!("variables.{name}"),
            &["default", "required", "secret", "description"],
        )?;
        let from_env = env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()));
        let default = spec
            .get("default")
            .and_then(Value::as_str)
            .map(str::to_string);
        out.insert(name.clone(), from_env.or(default));
    }
    Ok(out)
}

/// `text` with each `{{ name }}` replaced by the application variable's value.
fn resolve(text: &str, vars: &BTreeMap<String, Option<String>>, at: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("spin.toml: `{at}` has a `{{{{` without `}}}}`"))?;
        let name = after[..end].trim();
        match vars.get(name) {
            Some(Some(value)) => out.push_str(value),
            Some(None) => bail!(
                "spin.toml: `{at}` needs the variable `{name}`, which has no default; set \
                 SPIN_VARIABLE_{} in the environment of `glint deploy`",
                name.to_ascii_uppercase()
            ),
            None => {
                bail!("spin.toml: `{at}` refers to `{name}`, which [variables] does not declare")
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `dir/spin.toml` into the functions to deploy. `env` reads the deploying shell's
/// variables (`SPIN_VARIABLE_*`).
pub fn read(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<SpinFunction>> {
    let path = dir.join("spin.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let root: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    match root
        .get("spin_manifest_version")
        .and_then(Value::as_integer)
    {
        Some(2) => {}
        Some(v) => bail!(
            "spin.toml has manifest version {v}; Glint reads version 2 (`spin doctor` converts older ones)"
        ),
        None => {
            bail!("spin.toml has no `spin_manifest_version = 2`; Glint reads version 2 manifests")
        }
    }
    refuse_unknown(
        &root,
        "",
        &[
            "spin_manifest_version",
            "application",
            "variables",
            "trigger",
            "component",
        ],
    )?;
    let mut base = String::from("/");
    if let Some(app) = root.get("application") {
        let app = table(app, "application")?;
        refuse_unknown(
            app,
            "application",
            &["name", "version", "authors", "description", "trigger"],
        )?;
        if let Some(trigger) = app.get("trigger") {
            let trigger = table(trigger, "application.trigger")?;
            refuse_unknown(trigger, "application.trigger", &["http"])?;
            if let Some(http) = trigger.get("http") {
                let http = table(http, "application.trigger.http")?;
                refuse_unknown(http, "application.trigger.http", &["base"])?;
                if let Some(b) = http.get("base").and_then(Value::as_str) {
                    base = b.to_string();
                }
            }
        }
    }
    let vars = app_variables(&root, env)?;
    let triggers = match root.get("trigger") {
        Some(t) => table(t, "trigger")?.clone(),
        None => bail!("spin.toml has no [[trigger.http]]: nothing to deploy"),
    };
    refuse_unknown(&triggers, "trigger", &["http"])?;
    let http = triggers
        .get("http")
        .and_then(Value::as_array)
        .context("spin.toml: `trigger.http` must be a list of [[trigger.http]] tables")?;
    let components = match root.get("component") {
        Some(c) => table(c, "component")?.clone(),
        None => toml::Table::new(),
    };
    let mut functions = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, trigger) in http.iter().enumerate() {
        let at = format!("trigger.http[{i}]");
        let trigger = table(trigger, &at)?;
        refuse_unknown(trigger, &at, &["route", "component", "id", "executor"])?;
        let route = match trigger.get("route") {
            Some(Value::String(r)) => route_of(&base, r),
            Some(_) => bail!(
                "spin.toml: `{at}.route` is not a path (private routes are not supported by Glint); give it a path"
            ),
            None => bail!("spin.toml: `{at}` has no route"),
        };
        if let Some(executor) = trigger.get("executor") {
            let kind = executor.get("type").and_then(Value::as_str).unwrap_or("?");
            if kind != "spin" {
                bail!(
                    "spin.toml: `{at}.executor` is {kind:?}; Glint runs components that export \
                     wasi:http's handler (the \"spin\" executor), not Wagi"
                );
            }
        }
        let id = trigger
            .get("component")
            .and_then(Value::as_str)
            .with_context(|| {
                format!(
                    "spin.toml: `{at}.component` must name a [component.<id>] (inline components are not supported by Glint)"
                )
            })?;
        if let Some(other) = seen.insert(id.to_string(), route.clone()) {
            bail!(
                "spin.toml: component `{id}` has two routes ({other} and {route}); a Glint function has one route, so give each its own component"
            );
        }
        let component = components.get(id).with_context(|| {
            format!("spin.toml: `{at}.component` names `{id}`, which has no [component.{id}]")
        })?;
        functions.push(function(
            dir,
            id,
            &route,
            table(component, &format!("component.{id}"))?,
            &vars,
        )?);
    }
    Ok(functions)
}

/// A Spin route as a Glint route: the base joined on, a trailing `/...` dropped.
fn route_of(base: &str, route: &str) -> String {
    let route = route.strip_suffix("/...").unwrap_or(route);
    let route = if route == "..." { "" } else { route };
    let joined = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        route.trim_start_matches('/')
    );
    let trimmed = joined.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

fn function(
    dir: &Path,
    id: &str,
    route: &str,
    component: &toml::Table,
    vars: &BTreeMap<String, Option<String>>,
) -> Result<SpinFunction> {
    let at = format!("component.{id}");
    refuse_unknown(
        component,
        &at,
        &[
            "source",
            "description",
            "allowed_outbound_hosts",
            "key_value_stores",
            "environment",
            "variables",
            "build",
        ],
    )?;
    let source = match component.get("source") {
        Some(Value::String(s)) => dir.join(s),
        Some(_) => bail!(
            "spin.toml: `{at}.source` is a URL; Glint deploys a local file: download it and set `source` to its path"
        ),
        None => bail!("spin.toml: `{at}` has no source"),
    };
    let mut env = BTreeMap::new();
    if let Some(e) = component.get("environment") {
        for (k, v) in table(e, &format!("{at}.environment"))? {
            let v = v
                .as_str()
                .with_context(|| format!("spin.toml: `{at}.environment.{k}` must be a string"))?;
            env.insert(k.clone(), v.to_string());
        }
    }
    if let Some(v) = component.get("variables") {
        for (k, template) in table(v, &format!("{at}.variables"))? {
            let template = template
                .as_str()
                .with_context(|| format!("spin.toml: `{at}.variables.{k}` must be a string"))?;
            env.insert(
                k.clone(),
                resolve(template, vars, &format!("{at}.variables.{k}"))?,
            );
        }
    }
    let mut sections = BTreeMap::new();
    let hosts = string_list(
        component.get("allowed_outbound_hosts"),
        &format!("{at}.allowed_outbound_hosts"),
    )?;
    if !hosts.is_empty() {
        for host in &hosts {
            if host.contains("{{") || host.contains("self") {
                bail!(
                    "spin.toml: `{at}.allowed_outbound_hosts` entry {host:?} is not supported by Glint \
                     (no variables or `self` in hosts); write the scheme, host and port out"
                );
            }
        }
        let mut outbound = toml::Table::new();
        outbound.insert(
            "allowed_hosts".into(),
            Value::Array(hosts.into_iter().map(Value::String).collect()),
        );
        sections.insert("outbound".to_string(), Value::Table(outbound));
    }
    let stores = string_list(
        component.get("key_value_stores"),
        &format!("{at}.key_value_stores"),
    )?;
    if !stores.is_empty() {
        let mut kv = toml::Table::new();
        kv.insert(
            "stores".into(),
            Value::Array(stores.into_iter().map(Value::String).collect()),
        );
        sections.insert("kv".to_string(), Value::Table(kv));
    }
    let build = match component.get("build") {
        None => None,
        Some(b) => {
            let b = table(b, &format!("{at}.build"))?;
            refuse_unknown(b, &format!("{at}.build"), &["command", "workdir", "watch"])?;
            let command = match b.get("command") {
                Some(Value::String(c)) => c.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" && "),
                _ => bail!("spin.toml: `{at}.build.command` must be a string"),
            };
            let workdir = match b.get("workdir").and_then(Value::as_str) {
                Some(w) => dir.join(w),
                None => dir.to_path_buf(),
            };
            Some((command, workdir))
        }
    };
    let manifest = Manifest {
        name: Some(id.to_string()),
        description: component
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        route: Some(route.to_string()),
        env,
        http: HttpSection {
            style: Some("spin".into()),
        },
        sections,
        ..Manifest::default()
    };
    Ok(SpinFunction {
        name: id.to_string(),
        manifest: toml::to_string(&manifest).context("cannot write the function's glint.toml")?,
        component: source,
        build,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<SpinFunction>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spin.toml"), text).unwrap();
        read(dir.path(), env)
    }

    const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/greet/..."
component = "greeter"
[[trigger.http]]
route = "/count"
component = "counter"
[component.greeter]
source = "greeter.wasm"
allowed_outbound_hosts = ["https://*.example.com:8443"]
[component.greeter.variables]
message = "{{ greeting }}, world"
[component.counter]
source = "counter.wasm"
key_value_stores = ["default"]
[component.counter.build]
command = "cargo build --release"
workdir = "counter"
"#;

    #[test]
    fn a_spin_app_becomes_one_function_per_component() {
        let functions = read_text(APP, &|_| None).unwrap();
        assert_eq!(functions.len(), 2);
        let greeter = Manifest::parse(&functions[0].manifest).unwrap();
        assert_eq!(greeter.route.as_deref(), Some("/greet"));
        assert_eq!(greeter.http.style.as_deref(), Some("spin"));
        assert_eq!(greeter.env["message"], "hello, world");
        assert!(functions[0].manifest.contains("https://*.example.com:8443"));
        let counter = Manifest::parse(&functions[1].manifest).unwrap();
        assert_eq!(counter.route.as_deref(), Some("/count"));
        assert!(functions[1].manifest.contains("stores = [\"default\"]"));
        assert_eq!(
            functions[1].build.as_ref().unwrap().0,
            "cargo build --release"
        );
    }

    #[test]
    fn variables_come_from_the_environment_and_are_checked() {
        let with_token = APP.replace("\"{{ greeting }}, world\"", "\"{{ token }}\"");
        let err = read_text(&with_token, &|_| None).err().unwrap().to_string();
        assert!(err.contains("SPIN_VARIABLE_TOKEN"), "{err}");
        let env = |k: &str| (k == "SPIN_VARIABLE_TOKEN").then(|| "s3cret".to_string());
        let functions = read_text(&with_token, &env).unwrap();
        assert!(functions[0].manifest.contains("s3cret"));
        let undeclared = APP.replace("{{ greeting }}", "{{ nope }}");
        let err = read_text(&undeclared, &|_| None).err().unwrap().to_string();
        assert!(err.contains("`nope`"), "{err}");
    }

    #[test]
    fn what_glint_does_not_support_is_refused_by_name() {
        for (change, named) in [
            (
                "[component.counter]\n",
                "[component.counter]\nsqlite_databases = [\"default\"]\n",
            ),
            ("[application]\n", "[application]\nfoo = 1\n"),
            ("route = \"/count\"", "route = { private = true }"),
            (
                "source = \"counter.wasm\"",
                "source = { url = \"https://x\", digest = \"d\" }",
            ),
        ] {
            let text = APP.replace(change, named);
            let err = read_text(&text, &|_| None).err().unwrap().to_string();
            assert!(err.contains("spin.toml"), "{err}");
            assert!(
                err.contains("sqlite_databases")
                    || err.contains("application.foo")
                    || err.contains("private")
                    || err.contains("URL"),
                "{err}"
            );
        }
        let v1 = APP.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(
            read_text(&v1, &|_| None)
                .err()
                .unwrap()
                .to_string()
                .contains("version 2")
        );
        assert_eq!(route_of("/", "/..."), "/");
        assert_eq!(route_of("/api", "/users/..."), "/api/users");
    }
}
