//! Opening a workspace: the embedded store in a directory, with everything a workspace holds kept in
//! it (workspaces from before, which kept the behaviour registry and the engine checkpoint in files
//! beside the store, are moved over when opened).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use winsignal_features::registry::REGISTRY_FILE;
use winsignal_store::{EmbeddedStore, Store};

/// Opens (creating if needed) the workspace in `dir`. `lock_wait` is how long a write waits for another
/// process writing the workspace (the store's default when `None`).
pub fn open(dir: &Path, lock_wait: Option<Duration>) -> Result<EmbeddedStore> {
    let mut store = EmbeddedStore::open(dir)
        .with_context(|| format!("opening the workspace {}", dir.display()))?;
    if let Some(wait) = lock_wait {
        store.set_lock_wait(wait)?;
    }
    move_side_files(&store, dir)?;
    Ok(store)
}

/// State that older workspaces kept beside the store, moved into it: the behaviour registry (kept),
/// the engine checkpoint (dropped: it is rebuilt, keyed by log position, on the next replay).
fn move_side_files(store: &EmbeddedStore, dir: &Path) -> Result<()> {
    let registry = dir.join(REGISTRY_FILE);
    if registry.exists() {
        let text = std::fs::read_to_string(&registry)
            .with_context(|| format!("reading {}", registry.display()))?;
        let parsed = winsignal_features::registry::Registry::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", registry.display()))?;
        // Unless another process moved it in first.
        let json = parsed.to_json();
        store.update_state(
            crate::pipeline::REGISTRY,
            "",
            &mut |current| match current {
                Some(mut kept) => {
                    let mut bytes = Vec::new();
                    kept.bytes.read_to_end(&mut bytes)?;
                    Ok(bytes)
                }
                None => Ok(json.clone().into_bytes()),
            },
        )?;
        std::fs::remove_file(&registry)
            .with_context(|| format!("removing {} (now in the store)", registry.display()))?;
    }
    let old_checkpoint = dir.join("cache").join("engine-state.bin");
    if old_checkpoint.exists() {
        let _ = std::fs::remove_file(&old_checkpoint);
        let _ = std::fs::remove_dir(dir.join("cache"));
    }
    Ok(())
}
