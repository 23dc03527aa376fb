//! Named state as files: one file per name in the workspace's `state/` directory, written beside its
//! name, synced and renamed into place, and checked against its checksum as it is read back.
//!
//! Layout: `MAGIC`, `[u32 key length][key bytes]`, the state's bytes, then `[u64 xxh3-64]` of
//! everything between the magic and the checksum. The length of the bytes is what the file's length
//! leaves, so a cut file fails the checksum like a flipped bit does.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::error::{io_err, Result, StoreError};
use crate::{NamedState, StateWriter};

const MAGIC: &[u8; 8] = b"WSSTATE1";
const CHECKSUM: u64 = 8;
/// Keys are short descriptions (a position, a hash); a longer one means a damaged header.
const MAX_KEY_BYTES: u32 = 64 << 10;

/// Refuses names that are not plain file names, so a name can never reach outside `state/`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        Ok(())
    } else {
        Err(StoreError::Internal(format!(
            "state name {name:?}: use letters, digits, '-', '_' and '.', not starting with '.'"
        )))
    }
}

pub(crate) fn state_dir(workspace: &Path) -> PathBuf {
    workspace.join("state")
}

/// The file of the named state `name` in the state directory `dir`.
pub(crate) fn state_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.state"))
}

/// Writes `name` in `dir`: to a temporary file beside it, synced, then renamed over the old one. The
/// temporary file is locked until it is renamed, so [`remove_abandoned`] can tell a live write from one
/// whose process was killed.
pub(crate) fn write(dir: &Path, name: &str, key: &str, bytes: &mut StateWriter<'_>) -> Result<()> {
    check_name(name)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    remove_abandoned(dir);
    let target = state_file(dir, name);
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{name}-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    let written = match write_file(&tmp, key, bytes) {
        Ok(file) => file,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&target)(e));
    }
    drop(written);
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; a failure here leaves a valid file, old or new.
        let _ = d.sync_all();
    }
    Ok(())
}

const TMP_PREFIX: &str = ".tmp-";

/// Removes the temporary files of writes that never finished (their process was killed, or the
/// machine stopped): a live write holds a lock on its file until the file is renamed into place, and
/// the lock goes with the process. Files younger than a minute are left alone, so a write between
/// creating its file and locking it is never taken for an abandoned one.
pub(crate) fn remove_abandoned(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_none_or(|a| a <= std::time::Duration::from_secs(60)) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if file.try_lock().is_ok() {
            tracing::warn!(
                file = %entry.path().display(),
                "Removing a saved state's temporary file left by an interrupted write."
            );
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Reads `name` in `dir` and replaces it with what `update` makes of it, holding the workspace's
/// state-update lock (a file lock on `dir/.update.lock`, which other processes' updates wait for, up
/// to `lock_wait`; then [`StoreError::Busy`] naming `workspace`, as for a write batch).
pub(crate) fn update(
    workspace: &Path,
    dir: &Path,
    lock_wait: std::time::Duration,
    name: &str,
    key: &str,
    update: &mut crate::StateUpdate<'_>,
) -> Result<()> {
    check_name(name)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let lock_path = dir.join(".update.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    let deadline = std::time::Instant::now() + lock_wait;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Busy {
                    path: workspace.to_path_buf(),
                    waited_s: lock_wait.as_secs(),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
    }
    let current = read(dir, name)?;
    let path = state_file(dir, name);
    let bytes = update(current).map_err(io_err(&path))?;
    write(dir, name, key, &mut |w| w.write_all(&bytes))
}

/// Distinguishes temporary files of one process's concurrent writes.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Writes the state file, and returns it still open and locked (see [`write`]).
fn write_file(path: &Path, key: &str, bytes: &mut StateWriter<'_>) -> Result<File> {
    let key_len = u32::try_from(key.len())
        .ok()
        .filter(|&n| n <= MAX_KEY_BYTES)
        .ok_or_else(|| StoreError::Internal(format!("a state key of {} bytes", key.len())))?;
    let file = File::create(path).map_err(io_err(path))?;
    file.lock().map_err(io_err(path))?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Xxh3::new(),
    };
    out.inner.write_all(MAGIC).map_err(io_err(path))?;
    out.write_all(&key_len.to_le_bytes())
        .map_err(io_err(path))?;
    out.write_all(key.as_bytes()).map_err(io_err(path))?;
    bytes(&mut out).map_err(io_err(path))?;
    let checksum = out.hasher.digest();
    let mut inner = out.inner;
    inner
        .write_all(&checksum.to_le_bytes())
        .map_err(io_err(path))?;
    let file = inner
        .into_inner()
        .map_err(|e| io_err(path)(e.into_error()))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(file)
}

struct HashingWriter {
    inner: BufWriter<File>,
    hasher: Xxh3,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens `name` in `dir`, if it was ever written.
pub(crate) fn read(dir: &Path, name: &str) -> Result<Option<NamedState>> {
    check_name(name)?;
    let path = state_file(dir, name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let damaged = |reason: &str| StoreError::CorruptState {
        name: name.to_string(),
        path: path.clone(),
        reason: reason.to_string(),
    };
    let len = file.metadata().map_err(io_err(&path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    let mut word = [0u8; 4];
    if len < (MAGIC.len() + word.len()) as u64 + CHECKSUM {
        return Err(damaged("too short"));
    }
    reader.read_exact(&mut magic).map_err(io_err(&path))?;
    if &magic != MAGIC {
        return Err(damaged("not a winsignal state file"));
    }
    reader.read_exact(&mut word).map_err(io_err(&path))?;
    let key_len = u32::from_le_bytes(word);
    let header = (MAGIC.len() + word.len()) as u64 + u64::from(key_len);
    if key_len > MAX_KEY_BYTES || header + CHECKSUM > len {
        return Err(damaged("its key runs past the end of the file"));
    }
    let mut key = vec![0u8; key_len as usize];
    reader.read_exact(&mut key).map_err(io_err(&path))?;
    let mut hasher = Xxh3::new();
    hasher.update(&word);
    hasher.update(&key);
    let key = String::from_utf8(key).map_err(|_| damaged("its key is not UTF-8"))?;
    Ok(Some(NamedState {
        key,
        len: len - header - CHECKSUM,
        origin: path.display().to_string(),
        bytes: Box::new(CheckedReader {
            path,
            reader,
            remaining: len - header - CHECKSUM,
            hasher,
            checked: false,
        }),
    }))
}

/// Hands out a state's bytes and, on reaching their end, compares their checksum with the one written.
struct CheckedReader {
    path: PathBuf,
    reader: BufReader<File>,
    remaining: u64,
    hasher: Xxh3,
    checked: bool,
}

impl Read for CheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if !self.checked {
                let mut stored = [0u8; 8];
                self.reader.read_exact(&mut stored)?;
                if u64::from_le_bytes(stored) != self.hasher.digest() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "saved state {} is damaged: its checksum does not match its bytes",
                            self.path.display()
                        ),
                    ));
                }
                self.checked = true;
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("saved state {} ends early", self.path.display()),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}
