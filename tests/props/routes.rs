//! Request paths against route rules: canonicalisation never panics, is
//! idempotent and yields only the canonical alphabet; and no spelling of a
//! guarded path (case, `;`, %-encoding, `//`, `/./`, `/../`, `\`, encoded
//! `/`) is ever matched by anything but the rule guarding it.

use keyward::authz::{
    Settings, SettingsFile,
    path::canonical,
    routes::{Route, RouteRules},
};
use proptest::prelude::*;

const CASES: u32 = 3_000;

fn rules() -> RouteRules {
    let file: SettingsFile = toml::from_str(
        r#"
        [[routes]]
        path = "/admin/**"
        scopes = ["admin:all"]

        [[routes]]
        methods = ["POST", "PUT", "PATCH", "DELETE"]
        path = "/orders/**"
        scopes = ["orders:write"]

        [[routes]]
        path_prefix = "/"
        scopes = []
        "#,
    )
    .unwrap();
    Settings::from_file(file).unwrap().routes
}

/// One way of spelling a path differently, applied at a random place.
#[derive(Debug, Clone)]
enum Trick {
    FlipCase,
    Encode { upper_hex: bool },
    Param(String),
    DoubleSlash,
    DotSegment,
    DotDot(String),
    EncodedDotDot,
    Backslash,
    EncodedSlash,
    EncodedSemicolon,
    DoubleEncode,
    Query(String),
}

fn trick() -> impl Strategy<Value = Trick> {
    prop_oneof![
        3 => Just(Trick::FlipCase),
        3 => any::<bool>().prop_map(|upper_hex| Trick::Encode { upper_hex }),
        2 => "[a-z=]{0,6}".prop_map(Trick::Param),
        1 => Just(Trick::DoubleSlash),
        1 => Just(Trick::DotSegment),
        1 => "[a-z]{1,6}".prop_map(Trick::DotDot),
        1 => Just(Trick::EncodedDotDot),
        1 => Just(Trick::Backslash),
        1 => Just(Trick::EncodedSlash),
        1 => Just(Trick::EncodedSemicolon),
        1 => Just(Trick::DoubleEncode),
        1 => "[a-z/.;%]{0,8}".prop_map(Trick::Query),
    ]
}

/// Applies `trick` at byte `at` (clamped to a character of the path).
fn apply(path: &str, trick: &Trick, at: usize) -> String {
    let at = at % (path.len() + 1);
    let (head, tail) = path.split_at(at);
    match trick {
        Trick::FlipCase => path
            .char_indices()
            .map(|(i, c)| {
                if i >= at && c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
        Trick::Encode { upper_hex } => {
            let Some(c) = tail.chars().next().filter(|c| c.is_ascii_alphanumeric()) else {
                return path.to_owned();
            };
            let hex = if *upper_hex {
                format!("%{:02X}", c as u32)
            } else {
                format!("%{:02x}", c as u32)
            };
            format!("{head}{hex}{}", &tail[1..])
        }
        Trick::Param(p) => match tail.find('/') {
            Some(i) => format!("{head}{};{p}{}", &tail[..i], &tail[i..]),
            None => format!("{path};{p}"),
        },
        Trick::DoubleSlash => segment_boundary(path, at, "/"),
        Trick::DotSegment => segment_boundary(path, at, "/."),
        Trick::DotDot(name) => segment_boundary(path, at, &format!("/{name}/..")),
        Trick::EncodedDotDot => segment_boundary(path, at, "/x/%2e%2E"),
        Trick::Backslash => path.replacen('/', "\\", 1 + at % 2),
        Trick::EncodedSlash => path
            .replacen('/', "%2F", 1 + at % 2)
            .replacen("%2F", "/", 1),
        Trick::EncodedSemicolon => format!("{head}%3B{tail}"),
        Trick::DoubleEncode => path
            .replacen('/', "%252F", 1 + at % 2)
            .replacen("%252F", "/", 1),
        Trick::Query(q) => format!("{path}?{q}"),
    }
}

/// Inserts `insert` (which starts with `/`) before the `/` at or after `at`.
fn segment_boundary(path: &str, at: usize, insert: &str) -> String {
    match path[at..].find('/') {
        Some(i) => format!("{}{insert}{}", &path[..at + i], &path[at + i..]),
        None => format!("{path}{insert}"),
    }
}

fn guarded_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/admin".to_owned()),
        "[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,2}".prop_map(|rest| format!("/admin/{rest}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn canonical_never_panics(raw in any::<String>()) {
        let _ = canonical(&raw);
    }

    #[test]
    fn canonical_is_idempotent_and_yields_the_canonical_alphabet(
        raw in "[/a-zA-Z0-9._~%;:@!$&'()*+,=\\\\?#-]{0,24}|(/[a-z%0-9A-F.]{0,4}){0,6}",
    ) {
        if let Ok(once) = canonical(&raw) {
            let text = once.as_str();
            let twice = canonical(text);
            prop_assert_eq!(twice.as_ref(), Ok(&once), "not idempotent");
            prop_assert!(text.starts_with('/'));
            prop_assert!(!text.contains("//") && !text.contains(';') && !text.contains('\\'));
            prop_assert!(!text.contains(['?', '#']));
            for segment in text.split('/') {
                prop_assert!(segment != "." && segment != "..", "{}", text);
            }
        }
    }

    #[test]
    fn no_spelling_of_a_guarded_path_escapes_its_rule(
        path in guarded_path(),
        tricks in prop::collection::vec((trick(), any::<usize>()), 1..4),
        method in prop_oneof![Just("GET"), Just("post"), Just("Delete")],
    ) {
        let rules = rules();
        let mut spelled = path;
        for (trick, at) in &tricks {
            spelled = apply(&spelled, trick, *at);
        }
        match rules.route(method, &spelled) {
            Err(_) => {}
            Ok(Route::Scopes(scopes)) => prop_assert_eq!(
                scopes, &["admin:all".to_owned()][..], "{} {:?} matched another rule", method, spelled
            ),
            Ok(other) => prop_assert!(false, "{} {:?} was routed to {:?}", method, spelled, other),
        }
    }

    #[test]
    fn no_spelling_of_a_write_escapes_the_write_rule(
        rest in "[a-z0-9]{1,6}",
        tricks in prop::collection::vec((trick(), any::<usize>()), 1..3),
        method in prop_oneof![Just("POST"), Just("post"), Just("pAtCh"), Just("DELETE")],
    ) {
        let rules = rules();
        let mut spelled = format!("/orders/{rest}");
        for (trick, at) in &tricks {
            spelled = apply(&spelled, trick, *at);
        }
        match rules.route(method, &spelled) {
            Err(_) => {}
            Ok(Route::Scopes(scopes)) => prop_assert_eq!(
                scopes, &["orders:write".to_owned()][..], "{} {:?}", method, spelled
            ),
            Ok(other) => prop_assert!(false, "{} {:?} was routed to {:?}", method, spelled, other),
        }
    }

    #[test]
    fn a_path_is_routed_as_its_canonical_form(raw in "(/[a-zA-Z%0-9.;]{0,5}){1,4}") {
        let rules = rules();
        if let Ok(c) = canonical(&raw) {
            prop_assert_eq!(rules.route("GET", &raw), rules.route("GET", c.as_str()));
        }
    }
}
