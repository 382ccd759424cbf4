//! Public key ids: `key_` and a lower-case ULID. They sort by creation time,
//! which gives ListKeys its newest-first order and a simple page cursor.

use std::{fmt, str::FromStr};

const PREFIX: &str = "key_";
const LEN: usize = PREFIX.len() + 26;

/// Held inline: every cached record carries one, and a `String` cost a heap
/// allocation (48 bytes with malloc's overhead) on top of its 24.
#[derive(Clone)]
pub struct KeyId(Repr);

#[derive(Clone)]
enum Repr {
    /// Every id keyward makes: ASCII, `LEN` bytes.
    Inline([u8; LEN]),
    /// Anything else a store hands back, kept as it was.
    Other(Box<str>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key id is `key_` followed by 26 base32 characters")]
pub struct InvalidKeyId;

impl KeyId {
    pub fn generate() -> Self {
        Self::of_ulid(ulid::Ulid::new())
    }

    fn of_ulid(ulid: ulid::Ulid) -> Self {
        let mut bytes = [0; LEN];
        bytes[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        bytes[PREFIX.len()..].copy_from_slice(ulid.to_string().to_ascii_lowercase().as_bytes());
        Self(Repr::Inline(bytes))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only ASCII is stored inline, so this never fails.
            Repr::Inline(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Repr::Other(text) => text,
        }
    }

    /// Wraps an id read back from the store, which only holds ids keyward made.
    pub fn from_trusted(id: String) -> Self {
        match <[u8; LEN]>::try_from(id.as_bytes()) {
            Ok(bytes) if id.is_ascii() => Self(Repr::Inline(bytes)),
            _ => Self(Repr::Other(id.into_boxed_str())),
        }
    }
}

/// Equality, order and hash are the text's, whichever way it is held.
impl PartialEq for KeyId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for KeyId {}

impl PartialOrd for KeyId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for KeyId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl FromStr for KeyId {
    type Err = InvalidKeyId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ulid = text.strip_prefix(PREFIX).ok_or(InvalidKeyId)?;
        let ulid = ulid::Ulid::from_string(ulid).map_err(|_| InvalidKeyId)?;
        Ok(Self::of_ulid(ulid))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_to_themselves() {
        let id = KeyId::generate();
        assert_eq!(id.as_str().len(), 4 + 26);
        assert_eq!(id.as_str().parse::<KeyId>().unwrap(), id);
    }

    #[test]
    fn parsing_normalises_case() {
        let id = KeyId::generate();
        let upper = format!("key_{}", id.as_str()[4..].to_ascii_uppercase());
        assert_eq!(upper.parse::<KeyId>().unwrap(), id);
    }

    #[test]
    fn stored_ids_keep_their_text_however_held() {
        let made = KeyId::generate();
        let read = KeyId::from_trusted(made.as_str().to_owned());
        assert!(matches!(read.0, Repr::Inline(_)));
        assert_eq!(read, made);
        let odd = KeyId::from_trusted("key_legacy".to_owned());
        assert_eq!(odd.as_str(), "key_legacy");
        assert!(odd > made, "order is the text's");
        assert!(std::mem::size_of::<KeyId>() <= 32);
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "key_",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "kex_01arz3ndektsv4rrffq69g5fav",
            "key_01arz3ndektsv4rrffq69g5fa",
            "key_01arz3ndektsv4rrffq69g5fa!",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }
}
