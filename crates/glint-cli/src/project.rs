//! A function's folder on disk: its manifest (`glint.toml`, or a PhotonIQ-style
//! `photoniq.toml`), its language, and where its built component lands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glint_runtime::Manifest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Lang::Rust),
            "python" | "py" => Ok(Lang::Python),
            "js" | "javascript" | "typescript" | "ts" => Ok(Lang::Js),
            other => bail!("lang {other:?} is not supported; use rust, python or js"),
        }
    }
}

pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    pub lang: Lang,
    pub manifest: Manifest,
    /// The manifest as the node receives it (glint.toml's text, or one made from photoniq.toml).
    pub manifest_text: String,
}

impl Project {
    pub fn open(dir: &Path) -> Result<Self> {
        // Absolute, because toolchains run inside the folder.
        let dir = &dir
            .canonicalize()
            .with_context(|| format!("cannot open the function folder {}", dir.display()))?;
        let glint = dir.join("glint.toml");
        let photoniq = dir.join("photoniq.toml");
        let (manifest, manifest_text, manifest_path) = if glint.exists() {
            let text = std::fs::read_to_string(&glint)
                .with_context(|| format!("cannot read {}", glint.display()))?;
            let manifest =
                Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", glint.display()))?;
            (manifest, text, glint)
        } else if photoniq.exists() {
            let manifest = from_photoniq(&photoniq)?;
            let text = toml::to_string(&manifest)?;
            (manifest, text, photoniq)
        } else {
            bail!(
                "{} has no glint.toml (or photoniq.toml); create a function with `glint new NAME --lang rust|python|js`",
                dir.display()
            );
        };
        let name = manifest
            .name
            .clone()
            .or_else(|| {
                dir.canonicalize()
                    .ok()?
                    .file_name()?
                    .to_str()
                    .map(str::to_string)
            })
            .context("cannot tell the function's name; set `name` in the manifest")?;
        let lang = match &manifest.lang {
            Some(l) => {
                Lang::parse(l).map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?
            }
            None if dir.join("Cargo.toml").exists() => Lang::Rust,
            None if dir.join("package.json").exists() => Lang::Js,
            None => Lang::Python,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            lang,
            manifest,
            manifest_text,
        })
    }

    /// Where the built component is: `[build] component`, else the language's default.
    pub fn component_path(&self) -> Result<PathBuf> {
        if let Some(c) = &self.manifest.build.component {
            return Ok(self.dir.join(c));
        }
        let dist = self.dir.join(format!("dist/{}.wasm", self.name));
        // A Rust project built with plain cargo rather than `glint build`.
        if self.lang == Lang::Rust && !dist.exists() {
            let crate_name = rust_crate_name(&self.dir)?.replace('-', "_");
            let built = self
                .dir
                .join(format!("target/wasm32-wasip2/release/{crate_name}.wasm"));
            if built.exists() {
                return Ok(built);
            }
        }
        Ok(dist)
    }
}

pub fn rust_crate_name(dir: &Path) -> Result<String> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no [package] name", path.display()))
}

fn from_photoniq(path: &Path) -> Result<Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    glint_runtime::photoniq::to_manifest(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.0))
}
