//! Load-time checks of what a component imports and exports.

use super::error::LoadError;

/// The WIT package and version this host serves.
pub const WIT_PACKAGE: &str = "daedalus:autoscaler";
/// The current version of [`WIT_PACKAGE`]: what `wit/` holds and `policy new` vendors.
pub const WIT_VERSION: &str = "0.2.0";
/// The export a policy of the current version provides.
pub const POLICY_EXPORT: &str = "daedalus:autoscaler/policy@0.2.0";
/// Every version this host serves, newest first. Older ones are frozen under
/// `wit/versions/<version>/` and adapted to the host model in `convert.rs`.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.2.0", "0.1.0"];

/// Imports a policy may have, by name without version. Everything else is refused at load time.
///
/// - `log` and `daedalus:autoscaler/types`: the policy world itself;
/// - `wasi:io/*`, `wasi:cli/*`: what Rust `std` (and other language runtimes) import on
///   `wasm32-wasip2`. The context behind them is empty: no environment, arguments or stdin,
///   stdout discarded, stderr captured to report panics;
/// - `wasi:random/*`: served by a fixed byte cycle (hash-map seeds), so decisions stay
///   deterministic.
///
/// Filesystem, sockets, clocks and HTTP are never granted: time arrives in the input.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "log",
    "daedalus:autoscaler/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// `name` without its `@version` suffix.
pub fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// Refuses imports outside [`ALLOWED_IMPORTS`], listing every offender.
pub fn check_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> Result<(), LoadError> {
    let forbidden: Vec<String> = imports
        .into_iter()
        .filter(|name| !ALLOWED_IMPORTS.contains(&unversioned(name)))
        .map(str::to_string)
        .collect();
    if forbidden.is_empty() {
        Ok(())
    } else {
        Err(LoadError::ForbiddenImport(forbidden))
    }
}

/// Requires the policy export of a served version; returns that version (one of
/// [`SUPPORTED_VERSIONS`]), or names what was found instead.
pub fn check_exports<'a>(
    exports: impl IntoIterator<Item = &'a str>,
) -> Result<&'static str, LoadError> {
    let exports: Vec<&str> = exports.into_iter().collect();
    if let Some(v) = targeted_version(exports.iter().copied())
        && let Some(served) = SUPPORTED_VERSIONS.iter().find(|s| **s == v)
    {
        return Ok(served);
    }
    let policy_like: Vec<&&str> = exports
        .iter()
        .filter(|e| unversioned(e) == unversioned(POLICY_EXPORT))
        .collect();
    let detail = if let Some(found) = policy_like.first() {
        format!(
            "component targets `{found}`; this host serves daedalus:autoscaler versions {}",
            SUPPORTED_VERSIONS.join(", ")
        )
    } else {
        format!(
            "component exports [{}], expected `{POLICY_EXPORT}` (world scaling-policy)",
            exports.join(", ")
        )
    };
    Err(LoadError::WrongWorld(detail))
}

/// The WIT version a component targets, from its exports, if it exports any version of the
/// policy interface.
pub fn targeted_version<'a>(exports: impl IntoIterator<Item = &'a str>) -> Option<String> {
    exports
        .into_iter()
        .find(|e| unversioned(e) == unversioned(POLICY_EXPORT))
        .and_then(|e| e.split_once('@').map(|(_, v)| v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_ignores_versions_and_lists_offenders() {
        assert!(check_imports(["log", "wasi:io/streams@0.2.6", "wasi:cli/exit@0.2.12"]).is_ok());
        match check_imports([
            "log",
            "wasi:filesystem/types@0.2.6",
            "wasi:sockets/tcp@0.2.6",
        ]) {
            Err(LoadError::ForbiddenImport(f)) => assert_eq!(f.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(check_imports(["wasi:clocks/wall-clock@0.2.6"]).is_err());
    }

    #[test]
    fn exports_must_name_a_served_version() {
        assert_eq!(check_exports([POLICY_EXPORT]).unwrap(), WIT_VERSION);
        assert_eq!(
            check_exports(["daedalus:autoscaler/policy@0.1.0"]).unwrap(),
            "0.1.0"
        );
        let e = check_exports(["daedalus:autoscaler/policy@0.9.0"]).unwrap_err();
        assert!(e.to_string().contains("0.9.0"), "{e}");
        assert!(e.to_string().contains("0.2.0, 0.1.0"), "{e}");
        assert!(
            check_exports(["add"])
                .unwrap_err()
                .to_string()
                .contains("add")
        );
        assert_eq!(targeted_version([POLICY_EXPORT]).as_deref(), Some("0.2.0"));
    }
}
