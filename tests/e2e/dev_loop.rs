//! The developer loop in Rust, Python and JavaScript: `glint new` → `glint build` →
//! `glint deploy` → `glint execute`, `glint run --watch` picking up an edit, and the
//! errors a developer meets first. The Python and JS toolchains are installed by glint
//! itself, once per run, into target/glint-test-cache.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use glint_e2e::{Node, glint_bin, repo_root};

fn cache_dir() -> PathBuf {
    repo_root().join("target/glint-test-cache")
}

fn glint(node: Option<&Node>, args: &[&str]) -> (bool, String, String) {
    let config = std::env::temp_dir().join("glint-dev-loop-config");
    let mut cmd = Command::new(glint_bin());
    cmd.args(args)
        .env("GLINT_CACHE_DIR", cache_dir())
        .env("GLINT_CONFIG_DIR", &config)
        .env("GLINT_DATA_DIR", "/nonexistent-glint-test-dir")
        .env_remove("GLINT_API_KEY")
        .env_remove("GLINT_API_URL");
    if let Some(n) = node {
        cmd.env("GLINT_API_URL", &n.admin_url)
            .env("GLINT_API_KEY", &n.key);
    }
    let out: Output = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn new_project(parent: &Path, name: &str, lang: &str) -> PathBuf {
    let dir = parent.join(name);
    let (ok, out, err) = glint(
        None,
        &["new", name, "--lang", lang, "--dir", dir.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    for file in ["glint.toml", ".gitignore", "README.md"] {
        assert!(dir.join(file).exists(), "{lang} project lacks {file}");
    }
    dir
}

#[test]
fn new_build_deploy_execute_in_three_languages() {
    let node = Node::start();
    let work = tempfile::tempdir().unwrap();
    for (lang, shown) in [("rust", "Rust"), ("python", "Python"), ("js", "JavaScript")] {
        let name = format!("hello-{lang}");
        let dir = new_project(work.path(), &name, lang);

        let (ok, out, err) = glint(None, &["build", dir.to_str().unwrap()]);
        assert!(ok, "{lang} build failed:\n{out}\n{err}");
        assert!(
            out.starts_with("built ") && out.contains(&format!("dist/{name}.wasm")),
            "{out}"
        );
        let wasm = std::fs::read(dir.join(format!("dist/{name}.wasm"))).unwrap();
        assert_eq!(
            &wasm[..8],
            b"\0asm\x0d\0\x01\0",
            "{lang}: the build did not make a component"
        );

        let (ok, out, err) = glint(Some(&node), &["deploy", dir.to_str().unwrap()]);
        assert!(ok, "{lang} deploy failed:\n{out}\n{err}");
        assert!(out.contains(&format!("deployed {name} v1")), "{out}");

        let (ok, out, err) = glint(Some(&node), &["execute", &name]);
        assert!(ok, "{lang} execute failed: {err}");
        assert_eq!(out, format!("Hello from {name} ({shown})!\n"));
    }
}

#[test]
fn run_watch_serves_each_saved_change() {
    let work = tempfile::tempdir().unwrap();
    let dir = new_project(work.path(), "live", "rust");
    let mut child = Command::new(glint_bin())
        .args(["run", "--watch", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("GLINT_CACHE_DIR", cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |pred: &dyn Fn(&str) -> bool, what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "glint run never printed {what}; it printed:\n{}",
                    seen.join("\n")
                ),
            }
        }
    };
    let serving = wait_for(&|l| l.starts_with("serving live v1 at "), "the URL");
    let url = serving.rsplit(' ').next().unwrap().to_string();
    let get = |url: &str| {
        reqwest::blocking::get(url)
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    assert_eq!(get(&url), "Hello from live (Rust)!\n");
    // The request's log line is streamed.
    wait_for(
        &|l| l.contains("INFO") && l.contains("live: /"),
        "the request's log line",
    );

    let source = dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("(Rust)!", "(Rust, edited)!")).unwrap();
    wait_for(&|l| l.starts_with("redeployed live v2"), "the redeploy");
    assert_eq!(get(&url), "Hello from live (Rust, edited)!\n");

    // A broken edit keeps the last good version serving.
    std::fs::write(&source, "this is not rust").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut err_text = String::new();
    while !err_text.contains("build failed") && Instant::now() < deadline {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        err_text.push_str(&line);
    }
    assert!(
        err_text.contains("the previous version keeps serving"),
        "{err_text}"
    );
    assert_eq!(get(&url), "Hello from live (Rust, edited)!\n");

    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "glint run did not stop cleanly: {status}");
}

#[test]
fn errors_say_what_to_do() {
    let node = Node::start();
    let work = tempfile::tempdir().unwrap();

    // A bad manifest names its key.
    let dir = new_project(work.path(), "badmanifest", "rust");
    std::fs::write(
        dir.join("glint.toml"),
        "name = \"badmanifest\"\n[limits]\nmemroy_mb = 64\n",
    )
    .unwrap();
    let (ok, _, err) = glint(None, &["build", dir.to_str().unwrap()]);
    assert!(
        !ok && err.contains("glint.toml") && err.contains("memroy_mb"),
        "{err}"
    );

    // A folder that does not build is not deployed.
    let dir = new_project(work.path(), "broken", "rust");
    std::fs::write(dir.join("src/lib.rs"), "fn oops( {").unwrap();
    let (ok, _, err) = glint(Some(&node), &["deploy", dir.to_str().unwrap()]);
    assert!(
        !ok && err.contains("cargo build") && err.contains("failed"),
        "{err}"
    );
    let (ok, _, err) = glint(Some(&node), &["info", "broken"]);
    assert!(!ok && err.contains("does not exist"), "{err}");

    // A missing toolchain gets one line saying how to get it.
    let empty_path = tempfile::tempdir().unwrap();
    let empty_cache = tempfile::tempdir().unwrap();
    for (lang, hint) in [
        ("python", "Python 3 is not installed"),
        ("js", "Node.js and npm are not installed"),
    ] {
        let dir = new_project(work.path(), &format!("no-{lang}"), lang);
        let out = Command::new(glint_bin())
            .args(["build", dir.to_str().unwrap()])
            .env("PATH", empty_path.path())
            .env("GLINT_CACHE_DIR", empty_cache.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(hint) && err.contains("install"),
            "{lang}: {err}"
        );
    }

    // No manifest at all.
    let (ok, _, err) = glint(None, &["build", work.path().to_str().unwrap()]);
    assert!(!ok && err.contains("glint new"), "{err}");
    // An existing folder is not overwritten.
    let (ok, _, err) = glint(
        None,
        &[
            "new",
            "broken",
            "--lang",
            "rust",
            "--dir",
            dir_of(&work, "broken").to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("not empty"), "{err}");
}

fn dir_of(work: &tempfile::TempDir, name: &str) -> PathBuf {
    work.path().join(name)
}
