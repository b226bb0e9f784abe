//! Builds the repository's `templates/` and `wit/` into the binary, so `glint new` and
//! `glint build` work from an installed `glint` with no repository around.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let skip = ["target", "node_modules", "__pycache__", ".glint"];
        if path.is_dir() {
            if !skip.iter().any(|s| path.ends_with(s)) {
                files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.parent().unwrap().parent().unwrap();
    let mut code = String::new();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (name, dir) in [
        ("TEMPLATES", repo.join("templates")),
        ("WIT", repo.join("wit")),
        ("SDK", repo.join("sdk")),
    ] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut list = Vec::new();
        files(&dir, &mut list);
        code.push_str(&format!("pub static {name}: &[(&str, &[u8])] = &[\n"));
        for path in list {
            println!("cargo:rerun-if-changed={}", path.display());
            let rel = path
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            rel.hash(&mut hasher);
            std::fs::read(&path).expect("read file").hash(&mut hasher);
            code.push_str(&format!(
                "    ({rel:?}, include_bytes!({:?})),\n",
                path.display().to_string()
            ));
        }
        code.push_str("];\n");
    }
    // Names the folders these files are written to, so a changed file is never
    // shadowed by an older copy in the cache.
    code.push_str(&format!(
        "pub const CONTENT_HASH: &str = \"{:016x}\";\n",
        hasher.finish()
    ));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(out, code).unwrap();
}
