//! Content hashes: stable 64-bit fingerprints of canonical content, shown as 16 hex digits.

use xxhash_rust::xxh3::Xxh3;

/// A streaming hasher whose output depends only on the bytes fed to it (never on the process).
#[derive(Default, Clone)]
pub struct ContentHasher(Xxh3);

impl ContentHasher {
    pub fn new() -> Self {
        Self(Xxh3::new())
    }

    /// Feeds one field; fields are length-prefixed so that ("ab","c") and ("a","bc") differ.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(&self) -> u64 {
        self.0.digest()
    }
}

/// Hash of a single byte string.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The display form of a content hash.
pub fn hex(hash: u64) -> String {
    format!("{hash:016x}")
}
