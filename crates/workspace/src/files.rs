//! Files a user names: written beside their final name and renamed into place.

/// Writes a file that a user names (`--out`, `--export`) beside its final name and renames it into
/// place once it is complete and synced, so that a failure part-way (a full disk, an error while
/// writing) leaves the previous file as it was, and no reader ever sees half a file.
pub fn write_atomically(
    path: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let partial = path.with_file_name(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> anyhow::Result<()> {
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        w.flush()?;
        w.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path)
            .with_context(|| format!("moving {} to {}", partial.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.with_context(|| {
        format!(
            "writing {} (any earlier file there is unchanged)",
            path.display()
        )
    })
}
