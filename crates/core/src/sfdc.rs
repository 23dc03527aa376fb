//! Salesforce record ids: 15-character case-sensitive ids and their 18-character case-safe form.
//!
//! The 18-character form is the 15 characters plus three checksum characters, each encoding which of
//! five of the first 15 characters are upper-case letters. That is what makes the long form
//! case-insensitive: a long id whose case was lost (lower-cased by a spreadsheet, upper-cased by a
//! warehouse) still names one record, and its canonical case can be recovered from the suffix.

use std::fmt;

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Whether `id` has the shape of a Salesforce id (15 or 18 ASCII alphanumerics).
pub fn looks_like_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Why an 18-character id is not a valid Salesforce id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// A suffix character outside `A`–`Z`, `0`–`5`.
    SuffixCharacter { position: usize, found: char },
    /// The suffix marks a digit as an upper-case letter.
    SuffixMarksDigit { position: usize },
    /// The first 15 characters mix cases and disagree with the case the suffix encodes; `expected` is
    /// the 18-character id those 15 characters make.
    CaseMismatch { expected: String },
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::SuffixCharacter { position, found } => write!(
                f,
                "checksum character {position} is {found:?}; expected A-Z or 0-5"
            ),
            IdError::SuffixMarksDigit { position } => write!(
                f,
                "the checksum (last 3 characters) marks character {position}, a digit, as an upper-case letter"
            ),
            IdError::CaseMismatch { expected } => write!(
                f,
                "the checksum (last 3 characters) does not match the case of the first 15 (for them it would be {expected})"
            ),
        }
    }
}

/// The checksum suffix of a 15-character id.
fn suffix_of(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (k, chunk) in id15.chunks(5).enumerate() {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out[k] = SUFFIX_ALPHABET[bits];
    }
    out
}

/// The canonical 18-character form of a Salesforce id.
///
/// A 15-character id gets its suffix. An 18-character id is read case-insensitively: the suffix says
/// which of the first 15 characters are upper-case, and those are re-cased accordingly. It is refused
/// when the suffix cannot be a checksum (a character outside `A`–`Z`, `0`–`5`, or a digit marked
/// upper-case), or when its first 15 characters mix upper and lower case (so their case was kept)
/// and disagree with the suffix. `Ok(None)` for anything that is not shaped like an id.
pub fn canonical_18(id: &str) -> Result<Option<String>, IdError> {
    let id = id.trim();
    if !looks_like_id(id) {
        return Ok(None);
    }
    if id.len() == 15 {
        let suffix = suffix_of(id.as_bytes());
        let mut out = String::with_capacity(18);
        out.push_str(id);
        out.extend(suffix.iter().map(|&c| c as char));
        return Ok(Some(out));
    }
    let bytes = id.as_bytes();
    let mut body = [0u8; 15];
    for (k, s) in bytes[15..].iter().enumerate() {
        let s = s.to_ascii_uppercase();
        let bits =
            SUFFIX_ALPHABET
                .iter()
                .position(|&a| a == s)
                .ok_or(IdError::SuffixCharacter {
                    position: 16 + k,
                    found: s as char,
                })?;
        for i in 0..5 {
            let pos = k * 5 + i;
            let c = bytes[pos];
            let upper = bits & (1 << i) != 0;
            if upper && !c.is_ascii_alphabetic() {
                return Err(IdError::SuffixMarksDigit { position: pos + 1 });
            }
            body[pos] = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
        }
    }
    let given = &bytes[..15];
    let mixed =
        given.iter().any(u8::is_ascii_uppercase) && given.iter().any(u8::is_ascii_lowercase);
    if mixed && given != body {
        let mut expected = String::with_capacity(18);
        expected.push_str(&id[..15]);
        expected.extend(suffix_of(given).iter().map(|&c| c as char));
        return Err(IdError::CaseMismatch { expected });
    }
    let mut out = String::with_capacity(18);
    out.extend(body.iter().map(|&c| c as char));
    out.extend(suffix_of(&body).iter().map(|&c| c as char));
    Ok(Some(out))
}

/// The 18-character form of a Salesforce id, leniently: an 18-character id in any case becomes its
/// canonical form; an invalid one, or anything that is not shaped like an id, is returned unchanged.
pub fn to_18(id: &str) -> String {
    match canonical_18(id) {
        Ok(Some(long)) => long,
        _ => id.trim().to_string(),
    }
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
    fn long_ids_are_case_insensitive() {
        for folded in [
            "001a0000006vm9riac",
            "001A0000006VM9RIAC",
            "001a0000006vm9rIAC",
        ] {
            assert_eq!(
                canonical_18(folded),
                Ok(Some("001A0000006Vm9rIAC".to_string())),
                "{folded}"
            );
        }
        // A lower-cased id with letters in its first 15: the checksum re-cases them.
        assert_eq!(
            canonical_18("003300000010q0faau"),
            Ok(Some("003300000010Q0FAAU".to_string()))
        );
    }

    #[test]
    fn long_ids_with_a_wrong_checksum_are_refused() {
        // The suffix marks the digit at position 1 as upper-case.
        assert_eq!(
            canonical_18("001A0000006Vm9rBAC"),
            Err(IdError::SuffixMarksDigit { position: 1 })
        );
        // `6` and up cannot be checksum characters.
        assert!(matches!(
            canonical_18("001A0000006Vm9rIA9"),
            Err(IdError::SuffixCharacter { position: 18, .. })
        ));
        // Case kept (mixed) but not the case the suffix says: `m` should be upper-case under `G`.
        let e = canonical_18("001A0000006Vm9rIAG").unwrap_err();
        assert!(e.to_string().contains("would be 001A0000006Vm9rIAC"), "{e}");
        assert_eq!(to_18("001A0000006Vm9rIAG"), "001A0000006Vm9rIAG");
    }

    #[test]
    fn prefixes() {
        assert_eq!(key_prefix("006Ax000001AbCdEAB"), Some("006"));
        assert_eq!(key_prefix("x"), None);
    }
}
