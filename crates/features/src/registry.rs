//! The record of which definition each (id, version) meant when results were computed, so that changing a
//! definition's meaning without a new version is refused.

use crate::catalog::Catalog;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `id@version` → fingerprint, kept in the store as a named state (`behaviour-versions.json` beside the
/// store in workspaces from before).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub versions: BTreeMap<String, String>,
}

/// Where workspaces from before kept the registry (moved into the store when such a workspace opens).
pub const REGISTRY_FILE: &str = "behaviour-versions.json";

impl Registry {
    /// A registry from its JSON (as [`Registry::to_json`] writes it).
    pub fn parse(text: &str) -> Result<Registry, String> {
        serde_json::from_str(text).map_err(|e| format!("not a behaviour version registry: {e}"))
    }

    pub fn to_json(&self) -> String {
        #[allow(clippy::expect_used)]
        serde_json::to_string_pretty(self).expect("a map of strings serialises")
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

    /// Records the catalog's definitions as used (the caller keeps the registry, in the store).
    pub fn record(&mut self, catalog: &Catalog) {
        for d in &catalog.behaviours {
            self.versions
                .insert(format!("{}@{}", d.id, d.version), d.fingerprint());
        }
    }
}
