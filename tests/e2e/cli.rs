//! The `glint` CLI against a real node: deploy a folder, list, info, execute, delete, and
//! the errors a user meets first.

use std::process::{Command, Output};

use glint_e2e::{Node, glint_bin, repo_root};

fn glint(node: &Node, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(glint_bin());
    cmd.args(args)
        .env("GLINT_API_URL", &node.admin_url)
        .env("GLINT_DATA_DIR", "/nonexistent-glint-test-dir")
        .env_remove("GLINT_API_KEY");
    if let Some(k) = key {
        cmd.env("GLINT_API_KEY", k);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_function_life_cycle_from_the_command_line() {
    let node = Node::start();
    let key = Some(node.key.as_str());
    let hello_dir = repo_root().join("examples/hello");

    let (ok, out, err) = text(&glint(&node, key, &["deploy", hello_dir.to_str().unwrap()]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployed hello v1"), "{out}");
    assert!(out.contains(&format!("{}/hello", node.data_url)), "{out}");

    let (ok, out, _) = text(&glint(&node, key, &["list"]));
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("hello") && l.contains("v1")),
        "{out}"
    );

    let (ok, out, _) = text(&glint(&node, key, &["list", "--output", "json"]));
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["functions"][0]["route"], "/hello");

    let (ok, out, _) = text(&glint(&node, key, &["info", "hello"]));
    assert!(ok);
    assert!(
        out.contains("route:  /hello") && out.contains("GREETING") && out.contains("memory 64 MiB"),
        "{out}"
    );

    let (ok, out, err) = text(&glint(&node, key, &["execute", "hello"]));
    assert!(ok, "{err}");
    assert_eq!(out, "Hello from Glint!\n");
    let (ok, out, _) = text(&glint(
        &node,
        key,
        &[
            "execute", "hello", "-X", "POST", "--path", "/echo", "--data", "ping", "-i",
        ],
    ));
    assert!(ok);
    assert!(
        out.starts_with("HTTP/1.1 200 OK")
            && out.contains("x-glint-execution-id:")
            && out.ends_with("\n\nping"),
        "{out}"
    );
    let (ok, out, _) = text(&glint(&node, key, &["execute", "hello", "--version", "v1"]));
    assert!(ok);
    assert_eq!(out, "Hello from Glint!\n");

    // A .wasm plus --name.
    let wasm = repo_root().join("target/wasm32-wasip2/release/hello.wasm");
    let (ok, out, err) = text(&glint(
        &node,
        key,
        &["deploy", wasm.to_str().unwrap(), "--name", "hello2"],
    ));
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployed hello2 v1"));

    let (ok, out, _) = text(&glint(&node, key, &["delete", "hello2", "--force"]));
    assert!(ok);
    assert!(out.contains("deleted"));

    // Errors: non-zero exit and a message that says what to do.
    let (ok, _, err) = text(&glint(&node, key, &["info", "nope"]));
    assert!(!ok);
    assert!(
        err.contains("function 'nope' does not exist") && err.contains("glint list"),
        "{err}"
    );
    let (ok, _, err) = text(&glint(&node, Some("glint_wrong"), &["list"]));
    assert!(!ok);
    assert!(err.contains("invalid or revoked API key"), "{err}");
    let (ok, _, err) = text(&glint(&node, None, &["list"]));
    assert!(!ok);
    assert!(err.contains("GLINT_API_KEY"), "{err}");
    let (ok, _, err) = text(&glint(&node, key, &["deploy", "/nonexistent/fn"]));
    assert!(!ok);
    assert!(err.contains("cannot read"), "{err}");
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("glint.toml"),
        "name = \"bad\"\n[limits]\nmemory = 3\n",
    )
    .unwrap();
    let (ok, _, err) = text(&glint(
        &node,
        key,
        &["deploy", bad.path().to_str().unwrap()],
    ));
    assert!(!ok);
    assert!(
        err.contains("glint.toml") && err.contains("memory"),
        "{err}"
    );
    let (ok, _, err) = text(&glint(
        &node,
        key,
        &["deploy", wasm.to_str().unwrap(), "--name", "../x"],
    ));
    assert!(!ok);
    assert!(err.contains("function name \"../x\" is invalid"), "{err}");
}

#[test]
fn glint_admin_key_overrides_the_generated_key() {
    let key = "glint_my_own_admin_key_for_tests";
    let node = Node::start_with_admin_key(key);
    assert!(
        !node.banner.contains("Admin API key"),
        "no key should be generated: {}",
        node.banner
    );
    assert!(!node.data_dir.join("admin-key").exists());
    assert!(glint(&node, Some(key), &["list"]).status.success());
    let (ok, _, err) = text(&glint(&node, Some("glint_some_other_key"), &["list"]));
    assert!(!ok);
    assert!(err.contains("invalid or revoked API key"), "{err}");
}

#[test]
fn first_start_prints_the_admin_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_in(dir.path());
    assert!(
        node.banner.contains(&node.key),
        "the first start should print the key: {}",
        node.banner
    );
    assert!(node.stop());
    node.restart();
    assert!(
        !node.banner.contains(&node.key),
        "a restart must not print the key again: {}",
        node.banner
    );
    assert!(
        glint(&node, Some(&node.key.clone()), &["list"])
            .status
            .success(),
        "the key outlives a restart"
    );
}

/// Runs glint with a private config dir and no key or URL from the environment.
fn glint_in(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(glint_bin())
        .args(args)
        .env("GLINT_CONFIG_DIR", config)
        .env("GLINT_DATA_DIR", "/nonexistent-glint-test-dir")
        .env_remove("GLINT_API_KEY")
        .env_remove("GLINT_API_URL")
        .env_remove("GLINT_PROFILE")
        .output()
        .unwrap();
    text(&out)
}

#[test]
fn versions_aliases_rollback_env_logs_status_and_keys() {
    let node = Node::start();
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path();
    let hello_dir = repo_root().join("examples/hello");

    // Log in once; later commands use the saved profile.
    let (ok, out, err) = glint_in(
        cfg,
        &["login", "--url", &node.admin_url, "--key", &node.key],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("as profile 'default'"), "{out}");
    let saved = cfg.join("profiles.toml");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (ok, _, err) = glint_in(
        cfg,
        &[
            "login",
            "--url",
            &node.admin_url,
            "--key",
            "glint_bad",
            "--profile",
            "bad",
        ],
    );
    assert!(!ok && err.contains("invalid or revoked"), "{err}");

    let g = |args: &[&str]| glint_in(cfg, args);
    for _ in 0..2 {
        let (ok, out, err) = g(&["deploy", hello_dir.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
    }
    let (ok, out, _) = g(&["versions", "hello"]);
    assert!(ok && out.contains("v1") && out.contains("v2"), "{out}");
    let (ok, out, _) = g(&["remote", "version", "list", "hello", "--output", "json"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["versions"].as_array().unwrap().len(), 2);

    // Canary split, in both spellings, then rollback.
    let (ok, out, err) = g(&["alias", "set", "hello", "canary", "v1=0.9", "v2=0.1"]);
    assert!(ok, "{err}");
    assert!(out.contains("v1=0.9 v2=0.1"), "{out}");
    let (ok, out, _) = g(&["alias", "info", "hello", "canary"]);
    assert!(ok && out.contains("v1=0.9 v2=0.1"), "{out}");
    let (ok, _, err) = g(&[
        "remote",
        "alias",
        "update",
        "hello",
        "canary",
        "--version",
        "v1",
        "--weight",
        "0.5",
        "--version",
        "v2",
        "--weight",
        "0.5",
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = g(&["remote", "alias", "list", "hello"]);
    assert!(ok && out.contains("v1=0.5 v2=0.5"), "{out}");
    let (ok, out, err) = g(&["rollback", "hello"]);
    assert!(ok, "{err}");
    assert!(out.contains("latest of hello -> v1"), "{out}");
    let (ok, _, err) = g(&["rollback", "hello"]);
    assert!(!ok && err.contains("no older version"), "{err}");

    // Download what latest serves.
    let file = config.path().join("got.wasm");
    let (ok, out, err) = g(&["download", "hello", "-o", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("hello v1"), "{out}");
    assert_eq!(std::fs::read(&file).unwrap(), glint_e2e::guest("hello"));

    // Env vars reach the guest.
    let (ok, out, err) = g(&["env", "set", "hello", "GREETING", "Bonjour"]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = g(&["env", "list", "hello"]);
    assert!(
        ok && out.contains("GREETING") && out.contains("Bonjour"),
        "{out}"
    );
    let (ok, out, _) = g(&["execute", "hello"]);
    assert!(ok);
    assert_eq!(out, "Bonjour from Glint!\n");
    assert!(g(&["env", "unset", "hello", "GREETING"]).0);
    let (ok, out, _) = g(&["remote", "execute", "hello", "--data", "x"]);
    assert!(ok);
    assert_eq!(out, "Hello from Glint!\n");

    // Logs and status.
    let mut lines = String::new();
    for _ in 0..100 {
        lines = g(&["logs", "hello", "--since", "5m"]).1;
        if lines.contains("hello: POST /") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        lines.contains("INFO") && lines.contains("hello: GET /") && lines.contains("hello: POST /"),
        "{lines}"
    );
    let (ok, out, _) = g(&["status", "hello"]);
    assert!(
        ok && out.contains("ready:    true") && out.contains("loaded"),
        "{out}"
    );

    // Keys.
    let (ok, out, _) = g(&["keys", "create", "ci", "--role", "read", "--output", "json"]);
    assert!(ok);
    let key: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, _) = g(&["keys", "list"]);
    assert!(ok && out.contains("ci") && out.contains("read"), "{out}");
    let (ok, _, err) = glint_in(
        cfg,
        &[
            "deploy",
            hello_dir.to_str().unwrap(),
            "--key",
            key["key"].as_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("role 'read'"), "{err}");
    assert!(g(&["keys", "revoke", key["id"].as_str().unwrap()]).0);

    let (ok, out, _) = g(&["remote", "delete", "hello", "--force"]);
    assert!(ok && out.contains("deleted"));
    let (ok, _, err) = g(&["remote", "status", "hello"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

#[test]
fn photoniq_manifests_and_completions() {
    let node = Node::start();
    let config = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("photoniq.toml"),
        "name = \"piq\"\nversion = \"0.0.1\"\ndescription = \"d\"\nlang = \"rust\"\nexecute_url_suffix = \"/my/suffix\"\n\n\
         [log_settings]\nenabled = true\nlevel = \"INFO\"\n\n[env_vars]\nGREETING = \"Ahoy\"\n\n\
         [cors_settings]\nallowed_methods = [\"GET\"]\nallowed_hosts = [\"api.example.com\"]\nallow_http = true\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("target/wasm32-wasip2/release")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"piq-fn\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("target/wasm32-wasip2/release/piq_fn.wasm"),
        glint_e2e::guest("hello"),
    )
    .unwrap();
    let (ok, out, err) = glint_in(
        config.path(),
        &[
            "deploy",
            dir.path().to_str().unwrap(),
            "--no-build",
            "--url",
            &node.admin_url,
            "--key",
            &node.key,
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("/my/suffix/piq"), "{out}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        rt.block_on(node.call("/my/suffix/piq")),
        (200, "Ahoy from Glint!\n".to_string())
    );
    // cors_settings became the outbound allow-list.
    let (_, version) = rt.block_on(node.admin().get("/api/v1/functions/piq/versions/v1"));
    let manifest = version["manifest"].as_str().unwrap();
    assert!(
        manifest.contains("https://api.example.com") && manifest.contains("http://api.example.com"),
        "{manifest}"
    );
    assert!(manifest.contains("allowed_methods"), "{manifest}");

    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, _) = glint_in(config.path(), &["completions", shell]);
        assert!(
            ok && out.contains("glint") && out.contains("deploy"),
            "{shell}"
        );
    }
    let (ok, out, _) = glint_in(config.path(), &["alias", "set", "--help"]);
    assert!(ok && out.contains("Examples:"), "{out}");
}

#[test]
fn every_photoniq_remote_verb_works() {
    let node = Node::start();
    let config = tempfile::tempdir().unwrap();
    let hello_dir = repo_root().join("examples/hello");
    let remote = |args: &[&str]| {
        let mut all = vec!["remote"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &node.admin_url, "--key", &node.key]);
        glint_in(config.path(), &all)
    };
    let (ok, out, err) = remote(&["deploy", hello_dir.to_str().unwrap()]);
    assert!(ok && out.contains("deployed hello v1"), "{out}{err}");
    assert!(remote(&["deploy", hello_dir.to_str().unwrap()]).0);
    let (ok, out, _) = remote(&["list"]);
    assert!(ok && out.contains("hello"), "{out}");
    let (ok, out, _) = remote(&["info", "hello"]);
    assert!(ok && out.contains("route:  /hello"), "{out}");
    let body = config.path().join("body.txt");
    std::fs::write(&body, "from a file").unwrap();
    let (ok, out, _) = remote(&[
        "execute",
        "hello",
        "--file",
        body.to_str().unwrap(),
        "--header",
        "x-test: 1",
    ]);
    assert!(ok);
    assert_eq!(out, "Hello from Glint!\n");
    let (ok, out, _) = remote(&["version", "list", "hello"]);
    assert!(ok && out.contains("v2"), "{out}");
    let (ok, _, err) = remote(&[
        "alias",
        "update",
        "hello",
        "latest",
        "--version",
        "v1",
        "--weight",
        "1",
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = remote(&["alias", "info", "hello", "latest"]);
    assert!(ok && out.contains("latest") && out.contains("v1"), "{out}");
    let (ok, out, _) = remote(&["alias", "list", "hello"]);
    assert!(ok && out.contains("latest"), "{out}");
    let file = config.path().join("v2.wasm");
    let (ok, out, err) = remote(&[
        "download",
        "hello",
        "--version",
        "v2",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("hello v2"), "{out}{err}");
    assert_eq!(std::fs::read(&file).unwrap(), glint_e2e::guest("hello"));
    let (ok, out, _) = remote(&["status", "hello"]);
    assert!(ok && out.contains("ready:    true"), "{out}");
    let mut lines = String::new();
    for _ in 0..100 {
        lines = remote(&["logs", "hello"]).1;
        if lines.contains("hello: POST /") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(lines.contains("hello: POST /"), "{lines}");
    let (ok, out, _) = remote(&["delete", "hello", "--force"]);
    assert!(ok && out.contains("deleted"), "{out}");
}

/// Runs glint with `stdin` piped in.
fn glint_stdin(node: &Node, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(glint_bin())
        .args(args)
        .env("GLINT_API_URL", &node.admin_url)
        .env("GLINT_API_KEY", &node.key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    text(&child.wait_with_output().unwrap())
}

#[test]
fn kv_and_secret_commands() {
    let node = Node::start();
    let key = Some(node.key.as_str());
    let run = |args: &[&str]| text(&glint(&node, key, args));

    let (ok, out, err) = run(&["kv", "get", "nostore", "k"]);
    assert!(!ok && err.contains("does not exist"), "{out}{err}");
    assert!(run(&["kv", "create", "cache"]).0);
    let (ok, out, err) = run(&["kv", "set", "cache", "user/1", "ada"]);
    assert!(ok && out.contains("set user/1 in cache"), "{out}{err}");
    let (ok, out, _) = glint_stdin(&node, &["kv", "set", "cache", "user/2"], b"grace\x00bytes");
    assert!(ok, "{out}");
    assert!(run(&["kv", "set", "cache", "other", "x"]).0);
    let raw = glint(&node, key, &["kv", "get", "cache", "user/2"]);
    assert_eq!(raw.stdout, b"grace\x00bytes");
    let (ok, out, _) = run(&["kv", "list", "cache", "--prefix", "user/"]);
    assert!(ok);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["user/1", "user/2"]);
    let (ok, out, err) = run(&["kv", "list", "cache", "--limit", "1"]);
    assert!(
        ok && out.trim() == "other" && err.contains("--cursor"),
        "{out}{err}"
    );
    let (ok, out, _) = run(&["kv", "stores"]);
    assert!(ok && out.contains("cache") && out.contains('3'), "{out}");
    assert!(run(&["kv", "delete", "cache", "user/1"]).0);
    let (ok, _, err) = run(&["kv", "get", "cache", "user/1"]);
    assert!(!ok && err.contains("no key"), "{err}");
    let (ok, out, _) = run(&["--output", "json", "kv", "stores"]);
    assert!(ok && out.contains("\"keys\": 2"), "{out}");

    let value = "s3cret-from-stdin-77";
    let (ok, out, err) = glint_stdin(
        &node,
        &["secret", "set", "API_TOKEN"],
        format!("{value}\n").as_bytes(),
    );
    assert!(ok, "{out}{err}");
    let (ok, out, _) = run(&["secret", "list"]);
    assert!(
        ok && out.contains("API_TOKEN") && !out.contains(value),
        "{out}"
    );
    let (ok, out, _) = run(&["--output", "json", "secret", "list"]);
    assert!(
        ok && out.contains("API_TOKEN") && !out.contains(value),
        "{out}"
    );
    let (ok, _, err) = glint_stdin(&node, &["secret", "set", "BAD-NAME"], b"x");
    assert!(!ok && err.contains("invalid"), "{err}");
    let (ok, _, err) = glint_stdin(&node, &["secret", "set", "EMPTY"], b"");
    assert!(!ok && err.contains("empty"), "{err}");
    assert!(run(&["secret", "delete", "API_TOKEN"]).0);
    let (ok, out, _) = run(&["secret", "list"]);
    assert!(ok && out.contains("no secrets"), "{out}");
}

/// glint in `dir`, as a user types it inside a function's folder.
fn glint_at(dir: &std::path::Path, node: &Node, args: &[&str]) -> Output {
    let mut cmd = Command::new(glint_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("GLINT_API_URL", &node.admin_url)
        .env("GLINT_API_KEY", &node.key)
        .env("GLINT_DATA_DIR", "/nonexistent-glint-test-dir");
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_new_user_types_works() {
    let node = Node::start();
    // `glint deploy` with no path deploys the folder it runs in.
    let (ok, out, err) = text(&glint_at(
        &repo_root().join("examples/hello"),
        &node,
        &["deploy", "--no-build"],
    ));
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployed hello v1"), "{out}");

    // A folder with a prebuilt component, no build command and no lang: deployed as is.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("glint.toml"),
        "name = \"prebuilt\"\n[build]\ncomponent = \"app.wasm\"\n",
    )
    .unwrap();
    let (ok, out, err) = text(&glint_at(dir.path(), &node, &["deploy"]));
    assert!(!ok, "{out}");
    assert!(err.contains("prebuilt component \"app.wasm\""), "{err}");
    assert!(!err.contains("app.py"), "built as Python: {err}");
    std::fs::write(dir.path().join("app.wasm"), glint_e2e::guest("hello")).unwrap();
    let (ok, out, err) = text(&glint_at(dir.path(), &node, &["deploy"]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployed prebuilt v1"), "{out}");

    // `env set NAME KEY=VALUE`, as other CLIs take it, beside `KEY VALUE`.
    let (ok, out, err) = text(&glint_at(
        dir.path(),
        &node,
        &["env", "set", "prebuilt", "GREETING=Hi"],
    ));
    assert!(ok, "{out}{err}");
    assert_eq!(
        node.call("/prebuilt").await,
        (200, "Hi from Glint!\n".to_string())
    );
    let (ok, _, err) = text(&glint_at(
        dir.path(),
        &node,
        &["env", "set", "prebuilt", "GREETING", "Hey=there"],
    ));
    assert!(ok, "{err}");
    assert_eq!(node.call("/prebuilt").await.1, "Hey=there from Glint!\n");
    let (ok, _, err) = text(&glint_at(
        dir.path(),
        &node,
        &["env", "set", "prebuilt", "GREETING"],
    ));
    assert!(!ok);
    assert!(err.contains("GREETING=VALUE"), "{err}");
}
