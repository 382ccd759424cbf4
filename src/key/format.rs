//! The key string: `<prefix>_kw1_<secret><checksum>`.
//!
//! The prefix tells humans whose key it is; the fixed marker `_kw1_` gives
//! secret scanners one literal to anchor on (a prefix per project gives them
//! none); the secret is 256 bits from the OS CSPRNG; the checksum (CRC32 of
//! everything before it, marker included) lets a typo or a random string be
//! refused before any hashing or I/O. The checksum is not a security feature:
//! the secret is.
//!
//! Keys issued before the marker (`<prefix>_<secret><checksum>`) keep
//! parsing: the marked format is the old one with `_kw1` appended to the
//! prefix, so one split from the end reads both.

use std::fmt;

use super::base62::{self, CHECKSUM_LEN, SECRET_LEN};

/// Longest prefix keyward generates (from the project name).
pub const MAX_GENERATED_PREFIX: usize = 24;
/// Longest prefix the parser accepts, so prefixes can grow without breaking
/// keys already issued.
const MAX_PREFIX: usize = 64;
/// Prefix for projects whose names contain no ASCII letters or digits.
const FALLBACK_PREFIX: &str = "kw";
/// What sits between prefix and secret in every key keyward issues now; the
/// digit is the format's version.
pub const MARKER: &str = "_kw1_";
/// The marker as it ends the part before the secret's separating `_`.
const MARKER_STEM: &[u8] = b"_kw1";
pub(crate) const TAIL_LEN: usize = SECRET_LEN + CHECKSUM_LEN;
/// One regular expression for every marked key (Rust `regex`, RE2, Python
/// `re` read it alike): the prefix keyward generates, the marker, exactly the
/// base62 secret and checksum, and a word boundary after it so a longer run
/// is no key. No boundary before it: leaked keys are often glued to what
/// precedes them (`%3Dacme_kw1_…` in an encoded URL, `\nacme_kw1_…` in a
/// JSON string), and a leading `\b` made RE2 and Python miss those. A match
/// may then start a few characters early; it is a key only if [`parse`]
/// accepts the checksum of one of its suffixes.
pub const PATTERN: &str = r"[a-z0-9_]{1,64}_kw1_[0-9A-Za-z]{49}\b";

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

/// A key found in the wild (by a scanner), to check or revoke it.
impl From<ParsedKey<'_>> for SecretKey {
    fn from(key: ParsedKey<'_>) -> Self {
        Self(key.as_str().to_owned())
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
    prefix_len: usize,
    marked: bool,
}

impl<'a> ParsedKey<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn prefix(&self) -> &'a str {
        &self.raw[..self.prefix_len]
    }

    /// Whether the key carries [`MARKER`]; false for keys issued before it.
    pub fn is_marked(&self) -> bool {
        self.marked
    }
}

/// Checks shape and checksum without allocating.
pub fn parse(key: &str) -> Result<ParsedKey<'_>, Malformed> {
    let bytes = key.as_bytes();
    if bytes.len() < TAIL_LEN + 2 || bytes.len() > MAX_PREFIX + MARKER.len() + TAIL_LEN {
        return Err(Malformed);
    }
    let (head, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let (front, secret) = head.split_at(head.len() - SECRET_LEN);
    let Some((b'_', front)) = front.split_last() else {
        return Err(Malformed);
    };
    if !base62::is_base62(secret) {
        return Err(Malformed);
    }
    let (prefix_len, marked) = match front.strip_suffix(MARKER_STEM) {
        Some(prefix) if is_marked_prefix(prefix) => (prefix.len(), true),
        // An unmarked key whose own prefix happened to end in `_kw1`, or one
        // with capitals, is still an old key.
        _ if is_legacy_prefix(front) => (front.len(), false),
        _ => return Err(Malformed),
    };
    match base62::decode_checksum(checksum) {
        Some(sum) if sum == crc32fast::hash(head) => Ok(ParsedKey {
            raw: key,
            prefix_len,
            marked,
        }),
        _ => Err(Malformed),
    }
}

/// Exactly what [`PATTERN`] admits before the marker.
fn is_marked_prefix(prefix: &[u8]) -> bool {
    (1..=MAX_PREFIX).contains(&prefix.len())
        && prefix
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// What the parser accepted before the marker existed.
fn is_legacy_prefix(prefix: &[u8]) -> bool {
    (1..=MAX_PREFIX).contains(&prefix.len())
        && prefix
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Generates a new key with `prefix`, which must come from
/// [`prefix_for_project`].
pub fn generate(prefix: &str) -> SecretKey {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS random number generator failed");
    assemble(prefix, &secret)
}

fn assemble(prefix: &str, secret: &[u8; 32]) -> SecretKey {
    debug_assert!(is_marked_prefix(prefix.as_bytes()));
    let mut key = String::with_capacity(prefix.len() + MARKER.len() + TAIL_LEN);
    key.push_str(prefix);
    key.push_str(MARKER);
    base62::encode_secret(secret, &mut key);
    let sum = crc32fast::hash(key.as_bytes());
    base62::encode_checksum(sum, &mut key);
    SecretKey(key)
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
    hint_of(parse(key.expose()).expect("generated keys parse"))
}

/// The hint of any parsed key, e.g. one a scanner found.
pub fn hint_of(key: ParsedKey<'_>) -> String {
    let raw = key.as_str();
    format!("{}_...{}", key.prefix(), &raw[raw.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_have_the_documented_shape() {
        let key = generate("acme_live");
        let raw = key.expose();
        assert!(raw.starts_with("acme_live_kw1_"));
        assert_eq!(raw.len(), "acme_live_kw1_".len() + 43 + 6);
        let parsed = parse(raw).unwrap();
        assert_eq!(parsed.prefix(), "acme_live");
        assert!(parsed.is_marked());
    }

    /// Printed by `keyward admin bootstrap` built from the code before the
    /// marker (commit 78fda93), against a throwaway SQLite file.
    const LEGACY_KEY: &str = "keyward_adfRUuSyD4AKLTswcaD5j5jkK1IOKQRlUG349GZ84Qj2mqpoy";

    #[test]
    fn keys_issued_before_the_marker_still_parse() {
        let parsed = parse(LEGACY_KEY).unwrap();
        assert_eq!(parsed.prefix(), "keyward");
        assert!(!parsed.is_marked());
        assert_eq!(parsed.as_str(), LEGACY_KEY);
        let mut typo = LEGACY_KEY.to_owned();
        typo.replace_range(10..11, "x");
        assert!(parse(&typo).is_err());
    }

    #[test]
    fn an_old_prefix_ending_in_the_marker_stem_still_parses() {
        // Old-format key of a project named "Acme KW1": unmarked, and its
        // prefix's capitals keep it from reading as marked.
        let mut key = String::from("Acme_kw1_");
        base62::encode_secret(&[5; 32], &mut key);
        base62::encode_checksum(crc32fast::hash(key.as_bytes()), &mut key);
        let parsed = parse(&key).unwrap();
        assert_eq!(parsed.prefix(), "Acme_kw1");
        assert!(!parsed.is_marked());
    }

    #[test]
    fn the_pattern_matches_exactly_the_generated_keys() {
        let pattern = regex::Regex::new(&format!("^(?:{PATTERN})$")).unwrap();
        for project in ["acme", "Acme Live", "!!!", "kw1", &"x".repeat(40)] {
            let key = generate(&prefix_for_project(project));
            assert!(pattern.is_match(key.expose()), "{project}");
        }
        assert!(!pattern.is_match(LEGACY_KEY), "old keys have no marker");
        let key = generate("acme").into_exposed();
        let found = regex::Regex::new(PATTERN).unwrap();
        for embedded in [format!("{key}_"), format!("{key}0")] {
            assert!(!found.is_match(&embedded), "{embedded}");
        }
        for quoted in [
            format!("\"{key}\""),
            format!("key={key}\n"),
            format!("/{key}/"),
            format!("Q{key}"),
            format!("%3D{key}"),
        ] {
            assert_eq!(found.find(&quoted).unwrap().as_str(), key);
        }
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
        let key = assemble("a_kw1", &[1; 32]);
        assert_eq!(parse(key.expose()).unwrap().prefix(), "a_kw1");
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
