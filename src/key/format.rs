//! The key string: `<prefix>_<secret><checksum>`.
//!
//! The prefix tells humans and secret scanners whose key it is; the secret is
//! 256 bits from the OS CSPRNG; the checksum (CRC32 of everything before it)
//! lets a typo or a random string be refused before any hashing or I/O. The
//! checksum is not a security feature: the secret is.

use std::fmt;

use super::base62::{self, CHECKSUM_LEN, SECRET_LEN};

/// Longest prefix keyward generates (from the project name).
pub const MAX_GENERATED_PREFIX: usize = 24;
/// Longest prefix the parser accepts, so prefixes can grow without breaking
/// keys already issued.
const MAX_PREFIX: usize = 64;
/// Prefix for projects whose names contain no ASCII letters or digits.
const FALLBACK_PREFIX: &str = "kw";
const TAIL_LEN: usize = SECRET_LEN + CHECKSUM_LEN;

/// A plaintext key. Its `Debug` and `Display` never show the secret, so it
/// cannot leak through a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// The plaintext, for the one response that returns it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why a string is not a keyward key. Deliberately carries no part of the
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a keyward key")]
pub struct Malformed;

/// A string that has the shape of a keyward key and a valid checksum.
#[derive(Debug, Clone, Copy)]
pub struct ParsedKey<'a> {
    raw: &'a str,
}

impl<'a> ParsedKey<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn prefix(&self) -> &'a str {
        &self.raw[..self.raw.len() - TAIL_LEN - 1]
    }
}

/// Checks shape and checksum without allocating.
pub fn parse(key: &str) -> Result<ParsedKey<'_>, Malformed> {
    let bytes = key.as_bytes();
    if bytes.len() < TAIL_LEN + 2 || bytes.len() > MAX_PREFIX + 1 + TAIL_LEN {
        return Err(Malformed);
    }
    let (head, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let (prefix, secret) = head.split_at(head.len() - SECRET_LEN);
    let Some((b'_', prefix)) = prefix.split_last() else {
        return Err(Malformed);
    };
    let prefix_ok = !prefix.is_empty()
        && prefix
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if !prefix_ok || !base62::is_base62(secret) {
        return Err(Malformed);
    }
    match base62::decode_checksum(checksum) {
        Some(sum) if sum == crc32fast::hash(head) => Ok(ParsedKey { raw: key }),
        _ => Err(Malformed),
    }
}

/// Generates a new key with `prefix`, which must come from
/// [`prefix_for_project`].
pub fn generate(prefix: &str) -> SecretKey {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS random number generator failed");
    assemble(prefix, &secret)
}

fn assemble(prefix: &str, secret: &[u8; 32]) -> SecretKey {
    debug_assert!(is_valid_prefix(prefix));
    let mut key = String::with_capacity(prefix.len() + 1 + TAIL_LEN);
    key.push_str(prefix);
    key.push('_');
    base62::encode_secret(secret, &mut key);
    let sum = crc32fast::hash(key.as_bytes());
    base62::encode_checksum(sum, &mut key);
    SecretKey(key)
}

fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX
        && prefix
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The prefix of a project's keys: its ASCII letters and digits lower-cased,
/// every other run of characters one `_`, at most 24 characters.
/// `Acme Live` → `acme_live`.
pub fn prefix_for_project(project: &str) -> String {
    let mut prefix = String::with_capacity(MAX_GENERATED_PREFIX);
    let mut gap = false;
    for c in project.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !prefix.is_empty() {
                prefix.push('_');
            }
            gap = false;
            prefix.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
        if prefix.len() >= MAX_GENERATED_PREFIX {
            break;
        }
    }
    prefix.truncate(MAX_GENERATED_PREFIX);
    while prefix.ends_with('_') {
        prefix.pop();
    }
    if prefix.is_empty() {
        prefix.push_str(FALLBACK_PREFIX);
    }
    prefix
}

/// What a human sees instead of the key: prefix and last four characters.
pub fn hint(key: &SecretKey) -> String {
    let raw = key.expose();
    let parsed = parse(raw).expect("generated keys parse");
    format!("{}_...{}", parsed.prefix(), &raw[raw.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_have_the_documented_shape() {
        let key = generate("acme_live");
        let raw = key.expose();
        assert!(raw.starts_with("acme_live_"));
        assert_eq!(raw.len(), "acme_live_".len() + 43 + 6);
        let parsed = parse(raw).unwrap();
        assert_eq!(parsed.prefix(), "acme_live");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(generate("p"), generate("p"));
    }

    #[test]
    fn every_single_character_change_is_malformed() {
        let key = assemble("acme", &[7; 32]);
        let raw = key.expose();
        for i in 0..raw.len() {
            for replacement in ['0', 'a', 'Z', '_', '-'] {
                let mut changed: Vec<char> = raw.chars().collect();
                if changed[i] == replacement {
                    continue;
                }
                changed[i] = replacement;
                let changed: String = changed.into_iter().collect();
                assert_eq!(
                    parse(&changed).map(|_| ()),
                    Err(Malformed),
                    "{i}:{replacement}"
                );
            }
        }
    }

    #[test]
    fn wrong_lengths_and_shapes_are_malformed() {
        let key = assemble("acme", &[9; 32]);
        let raw = key.expose();
        for bad in [
            "",
            "acme",
            &raw[1..],
            &raw[..raw.len() - 1],
            &format!("{raw}0"),
            &raw[5..],                  // no prefix at all
            &raw.replacen('_', "-", 1), // no separator
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let long_prefix = format!("{}_{}", "a".repeat(65), &raw[5..]);
        assert!(parse(&long_prefix).is_err());
    }

    #[test]
    fn prefix_with_underscores_parses_from_the_end() {
        let key = assemble("a_b_c", &[1; 32]);
        assert_eq!(parse(key.expose()).unwrap().prefix(), "a_b_c");
    }

    #[test]
    fn prefixes_come_from_project_names() {
        assert_eq!(prefix_for_project("acme"), "acme");
        assert_eq!(prefix_for_project("Acme Live"), "acme_live");
        assert_eq!(prefix_for_project("--Acme--Live--"), "acme_live");
        assert_eq!(prefix_for_project("été"), "t");
        assert_eq!(prefix_for_project("!!!"), "kw");
        assert_eq!(
            prefix_for_project(&"x".repeat(100)).len(),
            MAX_GENERATED_PREFIX
        );
        assert_eq!(
            prefix_for_project(&format!("{}_y", "x".repeat(23))),
            "x".repeat(23)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = generate("acme");
        assert!(!format!("{key:?}").contains(&key.expose()[5..]));
    }

    #[test]
    fn hint_is_prefix_and_last_four() {
        let key = assemble("acme", &[3; 32]);
        let raw = key.expose();
        assert_eq!(hint(&key), format!("acme_...{}", &raw[raw.len() - 4..]));
    }
}
