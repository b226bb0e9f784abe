//! `glint new`: a ready project from `templates/<lang>`, built into the binary; and the
//! other files built into the binary (the guest WIT and SDKs) written out where the
//! toolchains read them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glint_store::FunctionName;

use crate::project::Lang;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

use embedded::{SDK, WIT};

/// Writes the `lang` template into `dir/name`, with the function's name filled in.
pub fn new_project(name: &str, lang: Lang, dir: Option<&Path>) -> Result<PathBuf> {
    let name: FunctionName = name.parse()?;
    let target = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name.as_str()));
    if target.exists() && std::fs::read_dir(&target)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; pick another name or --dir",
            target.display()
        );
    }
    let prefix = format!("{}/", lang.as_str());
    let mut written = 0;
    for (path, bytes) in embedded::TEMPLATES {
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let text = String::from_utf8_lossy(bytes)
            .replace("{{name}}", name.as_str())
            .replace("{{lang}}", lang.display_name());
        write_file(&target.join(rel), text.as_bytes())?;
        written += 1;
    }
    if written == 0 {
        bail!("this glint has no template for {}", lang.as_str());
    }
    project_sdk(&target, lang)?;
    Ok(target)
}

/// Writes the built-in WIT files under `dir` (once) and returns the folder of `package`.
pub fn wit_dir(dir: &Path, package: &str) -> Result<PathBuf> {
    extract(
        WIT,
        &dir.join(format!("wit-{}", embedded::CONTENT_HASH)),
        package,
    )
}

/// Writes the built-in SDK of `lang` into `project/.glint/sdk/<lang>` and returns that
/// folder: the Rust template depends on it by path, and the Python and JS builds read it
/// from there. An SDK folder that already matches is left alone, so its files keep their
/// timestamps and cargo does not rebuild the crate; one that differs is replaced whole.
pub fn project_sdk(project: &Path, lang: Lang) -> Result<PathBuf> {
    let dest = project.join(".glint/sdk").join(lang.as_str());
    let prefix = format!("{}/", lang.as_str());
    let files: Vec<(&str, &[u8])> = SDK
        .iter()
        .filter_map(|(path, bytes)| Some((path.strip_prefix(&prefix)?, *bytes)))
        .collect();
    if files.is_empty() {
        bail!("this glint has no SDK for {}", lang.as_str());
    }
    // A file dropped from the SDK comes with changes to the files that used it, so
    // comparing the SDK's own files is enough to tell a stale folder.
    let current = files
        .iter()
        .all(|(rel, bytes)| std::fs::read(dest.join(rel)).is_ok_and(|b| b == *bytes));
    if current {
        return Ok(dest);
    }
    match std::fs::remove_dir_all(&dest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot replace {}", dest.display()));
        }
        _ => {}
    }
    for (rel, bytes) in files {
        write_file(&dest.join(rel), bytes)?;
    }
    Ok(dest)
}

fn write_file(dest: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(dest, bytes).with_context(|| format!("cannot write {}", dest.display()))
}

/// Writes the files of `files` under `folder/` into `root` (once); returns `root/folder`.
fn extract(files: &[(&str, &[u8])], root: &Path, folder: &str) -> Result<PathBuf> {
    for (path, bytes) in files {
        if !path.starts_with(&format!("{folder}/")) {
            continue;
        }
        let dest = root.join(path);
        if !dest.exists() {
            write_file(&dest, bytes)?;
        }
    }
    Ok(root.join(folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(files: &'a [(&str, &[u8])], path: &str) -> &'a [u8] {
        files
            .iter()
            .find(|(p, _)| *p == path)
            .unwrap_or_else(|| panic!("{path} is not built in"))
            .1
    }

    /// The host interfaces' WIT is copied into each guest toolchain's folder and into the
    /// Rust SDK; every copy must be the same text, or guests and host drift apart.
    #[test]
    fn every_copy_of_the_host_wit_is_the_same() {
        for wit in ["keyvalue.wit", "config.wit"] {
            let canonical = file(WIT, &format!("wasi-http-0.2.12/deps/{wit}"));
            assert_eq!(
                file(WIT, &format!("wasi-http-0.2.10/deps/{wit}")),
                canonical,
                "{wit}"
            );
            assert_eq!(file(SDK, &format!("rust/wit/{wit}")), canonical, "{wit}");
        }
    }
}
