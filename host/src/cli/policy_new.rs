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

/// One file of a scaffold built from one of this repository's own policies.
struct Copied {
    /// Path in the new project.
    to: &'static str,
    /// The policy's file.
    text: &'static str,
    /// Executable (`build.sh`).
    executable: bool,
}

macro_rules! copied {
    ($dir:literal, $file:literal => $to:literal) => {
        Copied {
            to: $to,
            text: include_str!(concat!("../../../", $dir, "/", $file)),
            executable: false,
        }
    };
    ($dir:literal, $file:literal) => {
        copied!($dir, $file => $file)
    };
}

/// The JavaScript scaffold is `policies-js/lag-threshold/` itself, renamed: one source for the
/// policy we test in CI and the project a stranger starts from.
const JS_FILES: &[Copied] = &[
    copied!("policies-js/lag-threshold", "package.json"),
    copied!("policies-js/lag-threshold", "package-lock.json"),
    copied!("policies-js/lag-threshold", "policy.js"),
    copied!("policies-js/lag-threshold", "policy.test.js"),
    copied!("policies-js/lag-threshold", "build.mjs"),
    copied!("policies-js/lag-threshold", ".gitignore"),
];
const JS_NAME: &str = "lag-threshold-js";
const JS_README: &str = include_str!("../../templates/js/README.md.tmpl");

/// The Python scaffold is `policies-python/lag-threshold/`, renamed.
const PYTHON_FILES: &[Copied] = &[
    copied!("policies-python/lag-threshold", "requirements.txt"),
    copied!("policies-python/lag-threshold", "app.py"),
    copied!("policies-python/lag-threshold", "policy_logic.py"),
    copied!("policies-python/lag-threshold", "test_policy.py"),
    Copied {
        executable: true,
        ..copied!("policies-python/lag-threshold", "build.sh")
    },
    copied!("policies-python/lag-threshold", ".gitignore"),
];
const PYTHON_NAME: &str = "lag-threshold-py";
const PYTHON_README: &str = include_str!("../../templates/python/README.md.tmpl");

/// Where the in-repo policies find the WIT, and where a scaffold vendors it.
const REPO_WIT: [(&str, &str); 2] = [("'../../wit'", "'wit'"), (":-../../wit}", ":-wit}")];

/// Languages a project can be scaffolded in.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Lang {
    /// Rust with wit-bindgen, built for `wasm32-wasip2` (`cargo build`).
    Rust,
    /// JavaScript with componentize-js (`npm run build`; Node.js 20 or later).
    Js,
    /// Python with componentize-py (`./build.sh`; Python 3.10 or later).
    Python,
}

/// Creates `dir/name` with a buildable, tested policy; returns the project directory.
pub(crate) fn scaffold(name: &str, dir: &Path, lang: Lang) -> anyhow::Result<PathBuf> {
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
    match lang {
        Lang::Rust => {
            write("Cargo.toml", fill(CARGO_TOML))?;
            write("src/lib.rs", fill(LIB_RS))?;
            write("README.md", fill(README))?;
            write(".gitignore", "/target\n".into())?;
        }
        Lang::Js | Lang::Python => {
            let (files, from, readme) = match lang {
                Lang::Js => (JS_FILES, JS_NAME, JS_README),
                _ => (PYTHON_FILES, PYTHON_NAME, PYTHON_README),
            };
            write("README.md", fill(readme))?;
            for f in files {
                let mut text = f.text.replace(from, name);
                for (repo, vendored) in REPO_WIT {
                    text = text.replace(repo, vendored);
                }
                write(f.to, text)?;
                if f.executable {
                    make_executable(&root.join(f.to))?;
                }
            }
        }
    }
    for (file, text) in WIT_FILES {
        write(&format!("wit/{file}"), (*text).to_string())?;
    }
    Ok(root)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-repo policies still contain what the scaffolder rewrites, so a scaffold never
    /// points at `../../wit` or keeps our policy's name.
    #[test]
    fn scaffolds_rewrite_the_name_and_the_wit_path() {
        for (files, from) in [(JS_FILES, JS_NAME), (PYTHON_FILES, PYTHON_NAME)] {
            let all: String = files.iter().map(|f| f.text).collect();
            assert!(all.contains(from), "{from}");
            let wit_refs = REPO_WIT
                .iter()
                .filter(|(repo, _)| all.contains(repo))
                .count();
            assert_eq!(wit_refs, 1, "{from}: exactly one WIT path to rewrite");
            let dir = tempfile::tempdir().unwrap();
            let lang = if from == JS_NAME {
                Lang::Js
            } else {
                Lang::Python
            };
            let root = scaffold("my-rule", dir.path(), lang).unwrap();
            for f in files {
                let text = std::fs::read_to_string(root.join(f.to)).unwrap();
                assert!(!text.contains(from), "{}", f.to);
                assert!(!text.contains("../../wit"), "{}", f.to);
            }
            assert!(root.join("wit/world.wit").exists());
        }
    }
}
