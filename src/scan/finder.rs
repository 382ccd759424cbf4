//! Keys in one buffer of text.

use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder};

use crate::key::{
    SecretKey,
    format::{self, PATTERN},
};

/// [`PATTERN`] has no leading word boundary, so a key glued to the end of an
/// identifier (`API_KEY_acme_kw1_…`) is still a candidate; the checksum then
/// decides where the key starts. ASCII semantics (as RE2's) keep the DFA
/// fast on any input and make bytes that are not UTF-8 harmless.
static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    RegexBuilder::new(PATTERN)
        .unicode(false)
        .build()
        .expect("the key pattern compiles")
});

/// A key found in text. Holds the hint only: a report of a leak must not
/// leak it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line of the key's first character.
    pub line: usize,
    /// `prefix_...last4`, the hint keyward stores for the key.
    pub hint: String,
    /// The key, for `--check` and `--revoke`; its Debug is redacted.
    pub key: SecretKey,
}

/// Every keyward key in `text` whose checksum holds, in order.
pub fn find_keys(text: &[u8]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut line = 1;
    let mut counted = 0;
    for candidate in CANDIDATE.find_iter(text) {
        let Some((hint, key)) = first_key_in(candidate.as_bytes()) else {
            continue;
        };
        line += text[counted..candidate.start()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted = candidate.start();
        findings.push(Finding { line, hint, key });
    }
    findings
}

/// The key a candidate ends with: the longest suffix that parses. Only
/// suffixes starting at a prefix character are tried, and only on the rare
/// candidates, so this costs nothing on ordinary text.
fn first_key_in(candidate: &[u8]) -> Option<(String, SecretKey)> {
    let text = std::str::from_utf8(candidate).ok()?;
    let marker_at = text.len() - format::TAIL_LEN - format::MARKER.len();
    (0..marker_at).find_map(|start| {
        let parsed = format::parse(&text[start..]).ok()?;
        parsed
            .is_marked()
            .then(|| (format::hint_of(parsed), SecretKey::from(parsed)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::format::generate;

    #[test]
    fn finds_keys_with_their_lines_and_only_hints() {
        let one = generate("acme").into_exposed();
        let two = generate("acme_live").into_exposed();
        let text = format!("a\n\"key\": \"{one}\",\nb\nK={two}\n{one}");
        let found = find_keys(text.as_bytes());
        let lines: Vec<usize> = found.iter().map(|f| f.line).collect();
        assert_eq!(lines, [2, 4, 5]);
        assert_eq!(found[0].hint, format!("acme_...{}", &one[one.len() - 4..]));
        assert!(found.iter().all(|f| !one.contains(&f.hint[5..])));
        assert_eq!(found[1].key.expose(), two);
    }

    #[test]
    fn a_key_glued_to_an_identifier_is_found() {
        let key = generate("acme").into_exposed();
        let found = find_keys(format!("API_KEY_{key} xacme{key}").as_bytes());
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.hint.starts_with("acme_...")));
    }

    #[test]
    fn look_alikes_are_not_reported() {
        let key = generate("acme").into_exposed();
        let mut typo = key.clone();
        let last = if typo.ends_with('0') { "1" } else { "0" };
        typo.replace_range(typo.len() - 1.., last);
        let text = format!("{typo}\nacme_kw1_{}\n{key}0\n", "A".repeat(49));
        assert_eq!(find_keys(text.as_bytes()), []);
        assert_eq!(find_keys(b"\xff\xfe not utf-8 \x00"), []);
    }
}
