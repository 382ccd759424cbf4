//! The SHA-256 digest keyward stores and caches instead of the key.
//!
//! Keys carry 256 random bits, so a fast one-way hash is the right tool (NIST
//! SP 800-63B); a password hash would only slow every decision down.

use std::fmt;

use sha2::{Digest as _, Sha256};

use super::format::ParsedKey;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(key: ParsedKey<'_>) -> Self {
        Self(Sha256::digest(key.as_str().as_bytes()).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a digest back from a store column.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Digests stay out of logs too: one is enough to look a key up in a stolen
/// cache dump.
impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::format::{generate, parse};

    #[test]
    fn digest_is_sha256_of_the_whole_key() {
        let key = generate("acme");
        let digest = Digest::of(parse(key.expose()).unwrap());
        let expected: [u8; 32] = Sha256::digest(key.expose().as_bytes()).into();
        assert_eq!(digest.as_bytes(), &expected);
        assert_eq!(Digest::from_slice(&expected), Some(digest));
        assert_eq!(Digest::from_slice(&expected[1..]), None);
    }
}
