//! `daedalus policy new`: scaffold a standalone policy project.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// The WIT this host serves, vendored into every new project.
const WIT_FILES: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("world.wit", include_str!("../../../wit/world.wit")),
];
const CARGO_TOML: &str = include_str!("../../templates/rust/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../../templates/rust/lib.rs.tmpl");
const README: &str = include_str!("../../templates/rust/README.md.tmpl");

/// Languages a project can be scaffolded in.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Lang {
    /// Rust with wit-bindgen, built for `wasm32-wasip2`.
    Rust,
    /// JavaScript with componentize-js (not available yet).
    Js,
    /// Python with componentize-py (not available yet).
    Python,
}

/// Creates `dir/name` with a buildable, tested policy; returns the project directory.
pub(crate) fn scaffold(name: &str, dir: &Path, lang: Lang) -> anyhow::Result<PathBuf> {
    if !matches!(lang, Lang::Rust) {
        bail!(
            "only `--lang rust` is available in this version; JavaScript and Python templates are planned"
        );
    }
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "policy name `{name}` must start with a lowercase letter and use only a-z, 0-9, - and _"
        );
    }
    let root = dir.join(name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or directory",
            root.display()
        );
    }
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{artifact}}", &name.replace('-', "_"))
            .replace(
                "{{wit_version}}",
                daedalus_host::policy::imports::WIT_VERSION,
            )
    };
    let write = |rel: &str, text: String| -> anyhow::Result<()> {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("Cargo.toml", fill(CARGO_TOML))?;
    write("src/lib.rs", fill(LIB_RS))?;
    write("README.md", fill(README))?;
    write(".gitignore", "/target\n".into())?;
    for (file, text) in WIT_FILES {
        write(&format!("wit/{file}"), (*text).to_string())?;
    }
    Ok(root)
}
