//! `glint new`: a ready project from `templates/<lang>`, built into the binary.

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
        let dest = target.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&dest, text).with_context(|| format!("cannot write {}", dest.display()))?;
        written += 1;
    }
    if written == 0 {
        bail!("this glint has no template for {}", lang.as_str());
    }
    Ok(target)
}

/// Writes the built-in WIT files under `dir` (once) and returns the folder of `package`.
pub fn wit_dir(dir: &Path, package: &str) -> Result<PathBuf> {
    extract(WIT, &dir.join(format!("wit-{}", embedded::CONTENT_HASH)), package)
}

/// Writes the built-in SDK of `lang` (`rust`, `python` or `js`) under `dir` (once) and
/// returns its folder.
pub fn sdk_dir(dir: &Path, lang: &str) -> Result<PathBuf> {
    extract(SDK, &dir.join(format!("sdk-{}", embedded::CONTENT_HASH)), lang)
}

/// Writes the files of `files` under `folder/` into `root` (once); returns `root/folder`.
fn extract(files: &[(&str, &[u8])], root: &Path, folder: &str) -> Result<PathBuf> {
    for (path, bytes) in files {
        if !path.starts_with(&format!("{folder}/")) {
            continue;
        }
        let dest = root.join(path);
        if dest.exists() {
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    Ok(root.join(folder))
}
