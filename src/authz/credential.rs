//! Where a request carries its key: a bare-key header (`x-api-key`), the
//! `authorization` header with a scheme (`Bearer <key>`, `ApiKey <key>`),
//! or, only when enabled, a query parameter.
//!
//! Every source is looked at, not just the first that holds something: a
//! request whose sources hold different values is ambiguous (the upstream
//! might believe another one than keyward checked) and is refused, and on
//! allow every source that held the key is stripped.
//!
//! Extraction borrows from the request; it allocates only the list of
//! sources found. It does not judge the key: an empty or odd value is
//! handed on as it is, and the verifier calls it missing or malformed like
//! any other.

use super::Fields;

/// Where keys are looked for: each of `key_headers`, the authorization
/// header, and the query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySources {
    /// Headers whose whole value is the key; lower-case.
    pub key_headers: Vec<String>,
    /// Header holding `<scheme> <key>`; lower-case; `None` turns it off.
    pub authorization_header: Option<String>,
    /// Schemes accepted in the authorization header (compared ignoring case).
    pub authorization_schemes: Vec<String>,
    /// Query parameter holding the key; `None` (the default) turns it off.
    pub query_param: Option<String>,
}

impl Default for KeySources {
    fn default() -> Self {
        Self {
            key_headers: vec!["x-api-key".to_owned()],
            authorization_header: Some("authorization".to_owned()),
            authorization_schemes: vec!["Bearer".to_owned(), "ApiKey".to_owned()],
            query_param: None,
        }
    }
}

/// Where a key was found: what to strip before the request goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Header(&'a str),
    QueryParam(&'a str),
}

/// The key a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// No configured source carries one.
    None,
    /// Every source that carries one carries this (possibly empty) value.
    One(&'a str),
    /// Sources disagree: no one can say which key the upstream would
    /// believe, so the request is refused like a bad key.
    Ambiguous,
}

/// What a request carries in keyward's credential sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'a> {
    pub key: Key<'a>,
    /// Every source holding a credential, in the order looked at: all of
    /// them are stripped on allow, not only the one used, so no copy of the
    /// key reaches the upstream.
    pub sources: Vec<Source<'a>>,
}

impl<'a> Presented<'a> {
    /// The key to verify; `""` (missing) when there is none. Ambiguity is
    /// decided by the caller before this matters.
    pub fn key(&self) -> &'a str {
        match self.key {
            Key::One(key) => key,
            Key::None | Key::Ambiguous => "",
        }
    }
}

impl KeySources {
    /// Every keyward credential the request presents. An authorization
    /// header with another scheme (`Basic …`) is not one and is passed over
    /// (and left for the upstream).
    pub fn extract<'a, H: Fields + ?Sized>(
        &'a self,
        headers: &'a H,
        path: &'a str,
    ) -> Presented<'a> {
        let mut presented = Presented {
            key: Key::None,
            sources: Vec::new(),
        };
        let mut found = |key: &'a str, source: Source<'a>| {
            presented.key = match presented.key {
                Key::None => Key::One(key),
                Key::One(first) if first == key => Key::One(first),
                Key::One(_) | Key::Ambiguous => Key::Ambiguous,
            };
            if !presented.sources.contains(&source) {
                presented.sources.push(source);
            }
        };
        for name in &self.key_headers {
            if let Some(value) = headers.field(name) {
                found(value.trim(), Source::Header(name));
            }
        }
        if let Some(name) = &self.authorization_header
            && let Some(value) = headers.field(name)
            && let Some(key) = self.after_scheme(value)
        {
            found(key, Source::Header(name));
        }
        // Stripping goes by the exact name, so a spelling that only decodes
        // to it could reach the upstream: that makes the request ambiguous.
        let mut encoded_name = false;
        if let Some(param) = &self.query_param {
            for value in query_values(path, param) {
                let key = match value {
                    Spelled::Exact(key) => key,
                    Spelled::Encoded => {
                        encoded_name = true;
                        ""
                    }
                };
                found(key, Source::QueryParam(param));
            }
        }
        if encoded_name {
            presented.key = Key::Ambiguous;
        }
        presented
    }

    fn after_scheme<'v>(&self, value: &'v str) -> Option<&'v str> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        self.authorization_schemes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
            .then(|| rest.trim())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelled<'p> {
    /// `name=value`: the raw value.
    Exact(&'p str),
    /// A name that percent-decodes to `name` without being written so.
    Encoded,
}

/// The raw values of every `name=` parameter of the path's query string.
/// Keys are letters, digits and `_`, so values are not percent-decoded: an
/// encoded key is refused as malformed.
fn query_values<'p>(path: &'p str, name: &'p str) -> impl Iterator<Item = Spelled<'p>> + 'p {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            Some(Spelled::Exact(value))
        } else if key.contains('%') && decodes_to(key, name) {
            Some(Spelled::Encoded)
        } else {
            None
        }
    })
}

/// Whether `encoded`, percent-decoded, is `plain`.
fn decodes_to(encoded: &str, plain: &str) -> bool {
    let (bytes, mut i) = (encoded.as_bytes(), 0);
    let mut decoded = Vec::with_capacity(bytes.len());
    while i < bytes.len() {
        let byte = (bytes[i] == b'%')
            .then(|| encoded.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match byte {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    decoded == plain.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn key_of<'a>(
        sources: &'a KeySources,
        h: &'a HashMap<String, String>,
        path: &'a str,
    ) -> Key<'a> {
        sources.extract(h, path).key
    }

    #[test]
    fn x_api_key_holds_the_bare_key() {
        let s = KeySources::default();
        let h = headers(&[("x-api-key", " acme_k ")]);
        assert_eq!(
            s.extract(&h, "/"),
            Presented {
                key: Key::One("acme_k"),
                sources: vec![Source::Header("x-api-key")]
            }
        );
    }

    #[test]
    fn authorization_takes_bearer_and_apikey_schemes_in_any_case() {
        let s = KeySources::default();
        for value in [
            "Bearer acme_k",
            "bearer acme_k",
            "ApiKey acme_k",
            "APIKEY  acme_k ",
        ] {
            let h = headers(&[("authorization", value)]);
            let c = s.extract(&h, "/");
            assert_eq!(c.key, Key::One("acme_k"), "{value}");
            assert_eq!(c.sources, [Source::Header("authorization")]);
        }
    }

    #[test]
    fn an_empty_scheme_value_is_a_presented_but_empty_key() {
        let s = KeySources::default();
        let h = headers(&[("authorization", "Bearer")]);
        assert_eq!(key_of(&s, &h, "/"), Key::One(""));
        let h = headers(&[("x-api-key", "")]);
        assert_eq!(key_of(&s, &h, "/"), Key::One(""));
        assert_eq!(s.extract(&h, "/").key(), "");
    }

    #[test]
    fn other_schemes_are_not_keyward_credentials() {
        let s = KeySources::default();
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(
            s.extract(&h, "/"),
            Presented {
                key: Key::None,
                sources: vec![]
            }
        );
        // ...do not hide a key in another header, and are left alone.
        let h = headers(&[("authorization", "Basic x"), ("x-api-key", "acme_k")]);
        let c = s.extract(&h, "/");
        assert_eq!(c.key, Key::One("acme_k"));
        assert_eq!(c.sources, [Source::Header("x-api-key")]);
    }

    #[test]
    fn the_same_key_in_several_sources_is_used_and_every_copy_stripped() {
        let on = KeySources {
            query_param: Some("api_key".into()),
            ..KeySources::default()
        };
        let h = headers(&[("authorization", "Bearer acme_k"), ("x-api-key", "acme_k")]);
        let c = on.extract(&h, "/o?api_key=acme_k&api_key=acme_k");
        assert_eq!(c.key, Key::One("acme_k"));
        assert_eq!(
            c.sources,
            [
                Source::Header("x-api-key"),
                Source::Header("authorization"),
                Source::QueryParam("api_key")
            ]
        );
    }

    #[test]
    fn different_keys_in_two_sources_are_ambiguous() {
        let on = KeySources {
            query_param: Some("api_key".into()),
            ..KeySources::default()
        };
        let h = headers(&[("authorization", "Bearer acme_a"), ("x-api-key", "acme_b")]);
        let c = on.extract(&h, "/");
        assert_eq!(c.key, Key::Ambiguous);
        assert_eq!(c.key(), "", "nothing to verify");
        assert_eq!(
            c.sources.len(),
            2,
            "both are still stripped in observe mode"
        );
        let h = headers(&[("x-api-key", "acme_b")]);
        assert_eq!(key_of(&on, &h, "/?api_key=acme_c"), Key::Ambiguous);
        let none = headers(&[]);
        assert_eq!(
            key_of(&on, &none, "/?api_key=acme_a&api_key=acme_b"),
            Key::Ambiguous
        );
        // A name the upstream decodes to `api_key` but stripping would miss.
        for q in ["/?api%5Fkey=acme_a", "/?api_key=acme_a&%61pi_key=acme_a"] {
            assert_eq!(key_of(&on, &none, q), Key::Ambiguous, "{q}");
        }
        assert_eq!(key_of(&on, &none, "/?api%zzkey=acme_a"), Key::None);
    }

    #[test]
    fn query_keys_only_when_enabled() {
        let off = KeySources::default();
        let h = headers(&[]);
        assert_eq!(key_of(&off, &h, "/orders?api_key=acme_k"), Key::None);

        let on = KeySources {
            query_param: Some("api_key".into()),
            ..KeySources::default()
        };
        assert_eq!(
            on.extract(&h, "/orders?x=1&api_key=acme_k&y"),
            Presented {
                key: Key::One("acme_k"),
                sources: vec![Source::QueryParam("api_key")]
            }
        );
        assert_eq!(
            key_of(&on, &h, "/orders?api_key=acme_k#frag"),
            Key::One("acme_k")
        );
        assert_eq!(key_of(&on, &h, "/orders?api_keyx=acme_k"), Key::None);
        assert_eq!(key_of(&on, &h, "/orders"), Key::None);
    }

    #[test]
    fn sources_can_be_renamed_or_turned_off() {
        let s = KeySources {
            key_headers: vec!["x-token".into()],
            authorization_header: None,
            ..KeySources::default()
        };
        let h = headers(&[("x-api-key", "a"), ("authorization", "Bearer b")]);
        assert_eq!(key_of(&s, &h, "/"), Key::None);
        let h = headers(&[("x-token", "c")]);
        assert_eq!(key_of(&s, &h, "/"), Key::One("c"));
    }
}
