//! The record of which definition each (id, version) meant when results were computed, so that changing a
//! definition's meaning without a new version is refused.

use crate::catalog::Catalog;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `id@version` → fingerprint, kept in the workspace as `behaviour-versions.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub versions: BTreeMap<String, String>,
}

pub const REGISTRY_FILE: &str = "behaviour-versions.json";

impl Registry {
    pub fn load(dir: &Path) -> Result<Registry, String> {
        let path = dir.join(REGISTRY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a version registry: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Checks every definition against what its id and version meant before; returns the conflicts.
    pub fn conflicts(&self, catalog: &Catalog) -> Vec<String> {
        catalog
            .behaviours
            .iter()
            .filter_map(|d| {
                let key = format!("{}@{}", d.id, d.version);
                let known = self.versions.get(&key)?;
                (*known != d.fingerprint()).then(|| {
                    format!(
                        "behaviour {} version {} (line {}) means something different from the version {} already used \
                         in results; give it version {} (or a new id)",
                        d.id,
                        d.version,
                        d.line,
                        d.version,
                        self.max_version(&d.id) + 1
                    )
                })
            })
            .collect()
    }

    fn max_version(&self, id: &str) -> u32 {
        self.versions
            .keys()
            .filter_map(|k| {
                k.split_once('@')
                    .filter(|(i, _)| *i == id)
                    .and_then(|(_, v)| v.parse().ok())
            })
            .max()
            .unwrap_or(0)
    }

    /// Records the catalog's definitions as used and saves the registry atomically.
    pub fn record(&mut self, catalog: &Catalog, dir: &Path) -> Result<(), String> {
        for d in &catalog.behaviours {
            self.versions
                .insert(format!("{}@{}", d.id, d.version), d.fingerprint());
        }
        let path = dir.join(REGISTRY_FILE);
        let tmp = dir.join(format!("{REGISTRY_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}
