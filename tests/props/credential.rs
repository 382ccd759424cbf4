//! Credential extraction: never panics on arbitrary headers and targets,
//! never returns a key from a source that is not configured, and returns
//! one key only when every configured source that holds one agrees.

use std::collections::HashMap;

use keyward::authz::credential::{Key, KeySources, Source};
use proptest::prelude::*;

const CASES: u32 = 3_000;

const NAMES: &[&str] = &[
    "x-api-key",
    "x-token",
    "authorization",
    "proxy-authorization",
    "cookie",
];

fn sources() -> impl Strategy<Value = KeySources> {
    (
        prop::sample::subsequence(vec!["x-api-key", "x-token"], 0..=2),
        prop::option::of(prop::sample::select(vec![
            "authorization",
            "proxy-authorization",
        ])),
        prop::option::of(Just("api_key")),
    )
        .prop_map(|(key_headers, authorization, query)| KeySources {
            key_headers: key_headers.into_iter().map(str::to_owned).collect(),
            authorization_header: authorization.map(str::to_owned),
            authorization_schemes: vec!["Bearer".into(), "ApiKey".into()],
            query_param: query.map(str::to_owned),
        })
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("acme_k".to_owned()),
        Just("Bearer acme_k".to_owned()),
        Just("apikey acme_k".to_owned()),
        Just("Basic x".to_owned()),
        Just("acme_other".to_owned()),
        any::<String>(),
    ]
}

fn headers() -> impl Strategy<Value = HashMap<String, String>> {
    prop::collection::hash_map(
        prop_oneof![
            prop::sample::select(NAMES).prop_map(str::to_owned),
            any::<String>()
        ],
        value(),
        0..5,
    )
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("/x?api_key=acme_k".to_owned()),
        Just("/x?api_key=acme_k&api_key=acme_other".to_owned()),
        Just("/x?a=1&api%5fkey=acme_k#f".to_owned()),
        "/[a-z]{0,3}\\?[a-z_=&%0-9]{0,16}",
        any::<String>(),
    ]
}

/// What `sources` would read from one configured place, if anything.
fn candidate<'a>(
    sources: &KeySources,
    h: &'a HashMap<String, String>,
    source: &Source<'_>,
) -> Option<&'a str> {
    match source {
        Source::Header(name) => {
            let value = h.get(*name)?.as_str();
            if sources.key_headers.iter().any(|k| k == name) {
                Some(value.trim())
            } else {
                let (scheme, rest) = value
                    .trim_start()
                    .split_once(' ')
                    .unwrap_or((value.trim_start(), ""));
                sources
                    .authorization_schemes
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(scheme))
                    .then(|| rest.trim())
            }
        }
        Source::QueryParam(_) => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn extraction_never_panics(sources in sources(), h in headers(), target in target()) {
        let _ = sources.extract(&h, &target);
    }

    #[test]
    fn keys_come_only_from_configured_sources(sources in sources(), h in headers(), target in target()) {
        let presented = sources.extract(&h, &target);
        for source in &presented.sources {
            let configured = match source {
                Source::Header(name) => {
                    sources.key_headers.iter().any(|k| k == name)
                        || sources.authorization_header.as_deref() == Some(*name)
                }
                Source::QueryParam(name) => sources.query_param.as_deref() == Some(*name),
            };
            prop_assert!(configured, "{:?} is not configured", source);
        }
        match presented.key {
            Key::None => prop_assert!(presented.sources.is_empty()),
            Key::One(key) => {
                prop_assert!(!presented.sources.is_empty());
                // Every header source found holds exactly this key.
                for source in &presented.sources {
                    if let Some(found) = candidate(&sources, &h, source) {
                        prop_assert_eq!(found, key);
                    }
                }
                // The query can only have contributed when it is configured.
                let from_headers = presented.sources.iter().any(|s| matches!(s, Source::Header(_)));
                if !from_headers {
                    prop_assert!(sources.query_param.is_some());
                    let pair = format!("api_key={key}");
                    prop_assert!(target.contains(&pair));
                }
            }
            Key::Ambiguous => prop_assert!(!presented.sources.is_empty()),
        }
    }

    #[test]
    fn no_source_configured_for_a_header_means_no_key_from_it(value in value(), name in prop::sample::select(NAMES)) {
        let sources = KeySources {
            key_headers: vec!["x-token".into()],
            authorization_header: None,
            authorization_schemes: vec!["Bearer".into()],
            query_param: None,
        };
        prop_assume!(name != "x-token");
        let h = HashMap::from([(name.to_owned(), value)]);
        prop_assert_eq!(sources.extract(&h, "/?api_key=acme_k").key, Key::None);
    }
}
