//! `glint build`: runs each language's toolchain and reports the component it made.
//!
//! - Rust: `cargo build --release --target wasm32-wasip2` (adding the target if missing).
//! - Python: componentize-py 0.25.1, installed on first use into a venv Glint owns.
//! - JavaScript: esbuild bundles the source (resolving `import ... from "glint"` and npm
//!   packages), then componentize-js 0.23.0 builds the bundle; both are installed on first
//!   use with npm into a folder Glint owns.
//!
//! Glint's own WIT (`wit/`, built into the binary) is handed to the Python and JS
//! toolchains, and the language's SDK (`sdk/`, also built in) is written into the
//! project's `.glint/sdk/<lang>` for the build to use. The component lands in
//! `dist/<name>.wasm` unless `[build] component` says otherwise; a `[build] command`
//! replaces the language's default command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::project::{Lang, Project};

const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
const ESBUILD: &str = "esbuild@0.28.2";
/// The world in Glint's WIT that guests target.
const WORLD: &str = "glint:guest/http-handler";

/// Where Glint keeps toolchains it installed itself (`GLINT_CACHE_DIR` overrides it).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLINT_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("dev", "glint", "glint")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".glint-cache"))
}

fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Runs a command, showing a spinner; on failure prints its output and says what failed.
/// Runs a build command of the user's through `sh -c` in `dir`.
pub fn run_shell(command: &str, dir: &Path) -> Result<()> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(dir);
    run(cmd, &format!("`{command}`"))
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let bar = spinner(what.to_string());
    let out = cmd.stdin(Stdio::null()).output();
    bar.finish_and_clear();
    let out = out.with_context(|| format!("cannot start {what}"))?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("{what} failed ({})", out.status);
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds the project and returns the component's path.
pub fn build(project: &Project) -> Result<PathBuf> {
    let output = project.component_path()?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let build = &project.manifest.build;
    if let Some(command) = &build.command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).current_dir(&project.dir);
        run(cmd, &format!("`{command}`"))?;
    } else if let (Some(component), None) = (&build.component, &project.manifest.lang) {
        // A component built elsewhere (another toolchain, a CI artefact): used as it is.
        if !output.exists() {
            bail!(
                "glint.toml names the prebuilt component {component:?} (`[build] component`, with no \
                 build command and no `lang`), and {} is not there; build it first, or add \
                 `[build] command` or `lang` so glint builds it",
                output.display()
            );
        }
    } else {
        match project.lang {
            Lang::Rust => build_rust(project, &output)?,
            Lang::Python => build_python(project, &output)?,
            Lang::Js => build_js(project, &output)?,
        }
    }
    if !output.exists() {
        bail!(
            "the build finished but {} is not there; set `[build] component` in the manifest to the .wasm it makes",
            output.display()
        );
    }
    Ok(output)
}

fn build_rust(project: &Project, output: &Path) -> Result<()> {
    // Before anything else, so the project's `path = ".glint/sdk/rust"` dependency
    // resolves even for an editor's cargo.
    crate::scaffold::project_sdk(&project.dir, Lang::Rust)?;
    if !on_path("cargo") {
        bail!(
            "cargo is not installed: install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`"
        );
    }
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if !String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip2") =>
        {
            eprintln!("installing the wasm32-wasip2 Rust target (rustup target add wasm32-wasip2)");
            let mut cmd = Command::new("rustup");
            cmd.args(["target", "add", "wasm32-wasip2"]);
            run(cmd, "rustup target add wasm32-wasip2")?;
        }
        _ => {}
    }
    let target_dir = project.dir.join("target");
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--target-dir",
    ])
    .arg(&target_dir)
    .current_dir(&project.dir);
    run(cmd, "cargo build --release --target wasm32-wasip2")?;
    let crate_name = crate::project::rust_crate_name(&project.dir)?.replace('-', "_");
    let built = target_dir.join(format!("wasm32-wasip2/release/{crate_name}.wasm"));
    std::fs::copy(&built, output).with_context(|| {
        format!(
            "cargo did not produce {}; is the crate a cdylib?",
            built.display()
        )
    })?;
    Ok(())
}

/// Installs a toolchain into `dir` once. The install happens in a temporary folder that
/// is renamed into place, so a crash or a parallel install never leaves half of one.
fn install_once(dir: &Path, what: &str, install: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().context("toolchain folder has no parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("installing {what} into {} (once)", dir.display());
    if let Err(e) = install(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, dir).is_err() {
        // Another glint finished the same install first; use that one.
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::ensure!(dir.exists(), "cannot move {} into place", tmp.display());
    }
    Ok(())
}

/// A venv with componentize-py, made on first use. Returns the venv's python; the tool
/// runs as `python -c ...`, which keeps working after the venv is renamed into place.
fn componentize_py() -> Result<PathBuf> {
    let venv = cache_dir().join("toolchains/componentize-py-0.25.1");
    install_once(&venv, COMPONENTIZE_PY, |tmp| {
        let python = ["python3", "python"].into_iter().find(|p| on_path(p)).context(
            "Python 3 is not installed; install it (for example `apt-get install python3 python3-venv`) to build Python functions",
        )?;
        let mut cmd = Command::new(python);
        cmd.args(["-m", "venv"]).arg(tmp);
        run(cmd, "python3 -m venv").context("cannot make a venv; install python3-venv")?;
        let mut cmd = Command::new(tmp.join("bin/python"));
        cmd.args(["-m", "pip", "install", "--quiet", COMPONENTIZE_PY]);
        run(cmd, &format!("pip install {COMPONENTIZE_PY}"))
    })?;
    Ok(venv.join("bin/python"))
}

fn build_python(project: &Project, output: &Path) -> Result<()> {
    let sdk = crate::scaffold::project_sdk(&project.dir, Lang::Python)?;
    let tool = componentize_py()?;
    let wit = crate::scaffold::wit_dir(&cache_dir(), "wasi-http-0.2.12")?;
    let module = ["app.py", "main.py"]
        .into_iter()
        .find(|f| project.dir.join(f).exists())
        .map(|f| f.trim_end_matches(".py"))
        .with_context(|| {
            format!(
                "{} has no app.py; the handler's module must be app.py",
                project.dir.display()
            )
        })?;
    let mut cmd = Command::new(tool);
    cmd.args(["-c", "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())"])
        .arg("-d")
        .arg(&wit)
        .args(["-w", WORLD, "componentize", module, "-p", ".", "-p"])
        .arg(&sdk)
        .arg("-o")
        .arg(output)
        .current_dir(&project.dir);
    run(cmd, &format!("componentize-py ({module}.py)"))
}

/// The JS toolchain: esbuild and componentize-js, installed by npm into one folder.
struct JsToolchain {
    esbuild: PathBuf,
    componentize_js: PathBuf,
}

/// Installs the JS toolchain on first use. The folder is named after both versions, so a
/// glint that needs another set never reuses an older install.
fn js_toolchain() -> Result<JsToolchain> {
    let dir = cache_dir().join("toolchains/componentize-js-0.23.0-esbuild-0.28.2");
    install_once(&dir, &format!("{COMPONENTIZE_JS} and {ESBUILD}"), |tmp| {
        if !on_path("node") || !on_path("npm") {
            bail!(
                "Node.js and npm are not installed; install them (for example `apt-get install nodejs npm`) to build JavaScript functions"
            );
        }
        std::fs::create_dir_all(tmp)?;
        std::fs::write(
            tmp.join("package.json"),
            "{\"name\":\"glint-toolchain\",\"private\":true}\n",
        )?;
        let mut cmd = Command::new("npm");
        cmd.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            COMPONENTIZE_JS,
            ESBUILD,
        ])
        .current_dir(tmp);
        run(cmd, &format!("npm install {COMPONENTIZE_JS} {ESBUILD}"))
    })?;
    let modules = dir.join("node_modules");
    Ok(JsToolchain {
        esbuild: modules.join("esbuild/bin/esbuild"),
        componentize_js: modules.join("@bytecodealliance/componentize-js/src/cli.js"),
    })
}

fn build_js(project: &Project, output: &Path) -> Result<()> {
    let sdk = crate::scaffold::project_sdk(&project.dir, Lang::Js)?;
    let tools = js_toolchain()?;
    let wit = crate::scaffold::wit_dir(&cache_dir(), "wasi-http-0.2.10")?;
    let source = [
        "app.js",
        "index.js",
        "src/index.js",
        "app.ts",
        "index.ts",
        "src/index.ts",
    ]
    .into_iter()
    .map(|f| project.dir.join(f))
    .find(|p| p.exists())
    .with_context(|| {
        format!(
            "{} has no app.js (or app.ts); the fetch handler must be in app.js",
            project.dir.display()
        )
    })?;
    let source_name = source.file_name().unwrap_or_default().to_string_lossy();

    // The bundle's entry: Glint's HTTP entry point first (it takes the fetch listeners
    // the function adds), then the function's module. Exporting `incomingHandler` makes
    // componentize-js leave out StarlingMonkey's own fetch event, which cannot serve a
    // second request in one instance (`[scaling] reuse`).
    let entry = project.dir.join(".glint/build/entry.js");
    let source_path = serde_json::to_string(&source.to_string_lossy())?;
    let entry_text = format!(
        "// Written by `glint build`: the function behind Glint's HTTP entry point.\n\
         import {{ incomingHandler }} from \"glint\";\n\
         import {source_path};\n\
         export {{ incomingHandler }};\n"
    );
    if let Some(parent) = entry.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&entry, entry_text)
        .with_context(|| format!("cannot write {}", entry.display()))?;

    // componentize-js resolves only relative imports inside the project folder, so
    // esbuild first makes one file of the source, the SDK (`import ... from "glint"`)
    // and any npm packages. The `wasi:*` imports stay: componentize-js binds them to WIT.
    let bundle = project.dir.join(".glint/build/app.js");
    let mut cmd = Command::new(&tools.esbuild);
    cmd.arg(&entry)
        .args([
            "--bundle",
            "--format=esm",
            "--platform=browser",
            "--external:wasi:*",
            "--log-level=warning",
        ])
        .arg(format!("--alias:glint={}", sdk.join("glint.js").display()))
        .arg(format!("--outfile={}", bundle.display()))
        .current_dir(&project.dir);
    run(cmd, &format!("esbuild ({source_name})"))?;

    let mut cmd = Command::new("node");
    cmd.arg(&tools.componentize_js)
        .arg(&bundle)
        .arg("--wit")
        .arg(&wit)
        .args(["--world-name", WORLD, "-o"])
        .arg(output)
        .current_dir(&project.dir);
    run(cmd, &format!("componentize-js ({source_name})"))
}
