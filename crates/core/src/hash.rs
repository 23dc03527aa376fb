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

/// The hasher for in-memory maps keyed by our own values: `u64`s (content hashes, sequence numbers, dense
/// ids) or short strings (record ids, column names). A rotate and a multiply per word, as rustc's
/// FxHasher, instead of SipHash. The keys are ids and hashes from the user's own data, not input chosen
/// to collide, so flooding resistance buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.write_u64(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing spreads counters over the high bits the table uses for its tags.
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Builds [`FastHasher`]s.
pub type FastBuild = std::hash::BuildHasherDefault<FastHasher>;
/// A set of `u64` hashes or counters.
pub type U64Set = std::collections::HashSet<u64, FastBuild>;
/// A map keyed by `u64` hashes or counters.
pub type U64Map<V> = std::collections::HashMap<u64, V, FastBuild>;
/// A map with any key, hashed by [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_set_holds_counters_and_hashes_apart() {
        let mut set = U64Set::default();
        for i in 0..10_000u64 {
            assert!(set.insert(i));
            assert!(set.insert(hash_bytes(&i.to_le_bytes())));
        }
        assert_eq!(set.len(), 20_000);
        assert!(set.contains(&9_999));
        assert!(!set.contains(&10_000));
    }

    #[test]
    fn fast_map_tells_names_apart() {
        let names = [
            "a",
            "ab",
            "abcdefgh",
            "abcdefghi",
            "event_id",
            "event",
            "user_id",
            "user_email",
        ];
        let map: std::collections::HashMap<String, usize, FastBuild> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i))
            .collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(map.get(*n), Some(&i));
        }
        assert_eq!(map.get("abcdefg"), None);
    }
}
