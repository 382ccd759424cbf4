//! Public key ids: `key_` and a lower-case ULID. They sort by creation time,
//! which gives ListKeys its newest-first order and a simple page cursor.

use std::{fmt, str::FromStr};

const PREFIX: &str = "key_";

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key id is `key_` followed by 26 base32 characters")]
pub struct InvalidKeyId;

impl KeyId {
    pub fn generate() -> Self {
        Self(format!(
            "{PREFIX}{}",
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an id read back from the store, which only holds ids keyward made.
    pub fn from_trusted(id: String) -> Self {
        Self(id)
    }
}

impl FromStr for KeyId {
    type Err = InvalidKeyId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ulid = text.strip_prefix(PREFIX).ok_or(InvalidKeyId)?;
        let ulid = ulid::Ulid::from_string(ulid).map_err(|_| InvalidKeyId)?;
        Ok(Self(format!(
            "{PREFIX}{}",
            ulid.to_string().to_ascii_lowercase()
        )))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
