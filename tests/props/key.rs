//! The key parser: never panics, accepts what `generate` makes, and refuses
//! any one-character change of it (the checksum's job).

use keyward::key::format::{PATTERN, generate, parse, prefix_for_project};
use proptest::prelude::*;

const CASES: u32 = 2_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn parse_never_panics(input in any::<String>()) {
        let _ = parse(&input);
    }

    #[test]
    fn parse_never_panics_on_key_shaped_input(input in "[A-Za-z0-9_]{1,20}_[A-Za-z0-9]{40,55}") {
        if let Ok(parsed) = parse(&input) {
            prop_assert_eq!(parsed.as_str(), input.as_str());
        }
    }

    #[test]
    fn parse_never_panics_on_marked_input(input in "[a-z0-9_]{1,20}_kw1_[A-Za-z0-9]{45,52}") {
        if let Ok(parsed) = parse(&input) {
            prop_assert_eq!(parsed.as_str(), input.as_str());
            prop_assert!(parsed.is_marked());
        }
    }

    #[test]
    fn generated_keys_parse_with_their_prefix(project in any::<String>()) {
        let prefix = prefix_for_project(&project);
        let key = generate(&prefix);
        let parsed = parse(key.expose());
        prop_assert!(parsed.is_ok(), "a generated key did not parse");
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.prefix(), prefix.as_str());
        prop_assert!(parsed.is_marked());
    }

    #[test]
    fn the_pattern_finds_every_generated_key_whole(
        project in any::<String>(),
        before in "[ \t\n\"'=:/|,(]{0,3}",
        after in "[ \t\n\"'&;/|,)]{0,3}",
    ) {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        let key = generate(&prefix_for_project(&project)).into_exposed();
        let text = format!("{before}{key}{after}");
        let found = pattern.find(&text).map(|m| m.as_str());
        prop_assert_eq!(found, Some(key.as_str()));
    }

    #[test]
    fn any_single_character_change_is_malformed(
        project in "[a-z]{1,12}",
        position in any::<prop::sample::Index>(),
        replacement in any::<char>(),
    ) {
        let key = generate(&prefix_for_project(&project)).into_exposed();
        let chars: Vec<char> = key.chars().collect();
        let at = position.index(chars.len());
        prop_assume!(chars[at] != replacement);
        let mut changed = chars.clone();
        changed[at] = replacement;
        let changed: String = changed.into_iter().collect();
        prop_assert!(parse(&changed).is_err(), "changing char {} still parses", at);
    }

    #[test]
    fn dropping_or_adding_a_character_is_malformed(
        position in any::<prop::sample::Index>(),
        extra in "[A-Za-z0-9_]",
        drop in any::<bool>(),
    ) {
        let key = generate("acme").into_exposed();
        let at = position.index(key.len());
        let mut changed = key.clone();
        if drop {
            changed.remove(at);
        } else {
            changed.insert_str(at, &extra);
        }
        prop_assert!(parse(&changed).is_err());
    }
}
