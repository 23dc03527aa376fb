//! Salesforce record ids: 15-character case-sensitive ids and their 18-character case-safe form.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Whether `id` has the shape of a Salesforce id (15 or 18 ASCII alphanumerics).
pub fn looks_like_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// The 18-character form of a Salesforce id; an 18-character id is returned as is, anything else
/// (not an id) is returned unchanged.
pub fn to_18(id: &str) -> String {
    let id = id.trim();
    if id.len() != 15 || !looks_like_id(id) {
        return id.to_string();
    }
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(18);
    out.push_str(id);
    for chunk in bytes.chunks(5) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(SUFFIX_ALPHABET[bits] as char);
    }
    out
}

/// The three-character key prefix naming the object type (`001` account, `006` opportunity, …).
pub fn key_prefix(id: &str) -> Option<&str> {
    if looks_like_id(id) {
        id.get(0..3)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_conversions() {
        // Examples from Salesforce's documentation and community references.
        assert_eq!(to_18("001A0000006Vm9r"), "001A0000006Vm9rIAC");
        assert_eq!(to_18("003300000010Q0F"), "003300000010Q0FAAU");
        assert_eq!(to_18("001A0000006Vm9rIAC"), "001A0000006Vm9rIAC");
        assert_eq!(to_18("not-an-id"), "not-an-id");
    }

    #[test]
    fn prefixes() {
        assert_eq!(key_prefix("006Ax000001AbCdEAB"), Some("006"));
        assert_eq!(key_prefix("x"), None);
    }
}
