//! `policy inspect`: what a component is, and whether this host would load it.

use super::engine::{PolicyEngine, sha256_hex};
use super::error::LoadError;
use super::imports;
use super::limits::PolicyLimits;
use crate::model::PolicyInfo;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The facts about one component file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file inspected.
    pub path: String,
    /// Size, bytes.
    pub size_bytes: usize,
    /// sha256 of the file, to pin in the config.
    pub sha256: String,
    /// The WIT version of `daedalus:autoscaler/policy` it exports, if any.
    pub wit_version: Option<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// Its imports.
    pub imports: Vec<String>,
    /// `describe()`, when the host can load it.
    pub policy: Option<PolicyInfo>,
    /// Why the host would refuse it, if it would.
    pub load_error: Option<String>,
}

/// Inspects a component file. Fails only if the file cannot be read or is not a component;
/// a component the host would refuse is reported with `load_error`.
pub fn inspect(engine: &Arc<PolicyEngine>, path: &Path) -> Result<Inspection, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let (exports, import_names) = engine.interface_of(&bytes)?;
    let wit_version = imports::targeted_version(exports.iter().map(String::as_str));
    let (policy, load_error) = match engine.load_bytes(&bytes, &PolicyLimits::default()) {
        Ok(p) => (Some(p.info().clone()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Inspection {
        path: path.display().to_string(),
        size_bytes: bytes.len(),
        sha256: sha256_hex(&bytes),
        wit_version,
        exports,
        imports: import_names,
        policy,
        load_error,
    })
}
