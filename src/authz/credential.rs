//! Where a request carries its key: a bare-key header (`x-api-key`), the
//! `authorization` header with a scheme (`Bearer <key>`, `ApiKey <key>`),
//! or, only when enabled, a query parameter.
//!
//! Extraction borrows from the request and allocates nothing. It does not
//! judge the key: an empty or odd value is handed on as it is, and the
//! verifier calls it missing or malformed like any other.

use super::Fields;

/// Where keys are looked for, in this order: each of `key_headers`, then the
/// authorization header, then the query parameter.
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

/// A presented key and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    pub key: &'a str,
    pub source: Source<'a>,
}

impl KeySources {
    /// The first key the request presents, or `None` when it presents none.
    /// An authorization header with another scheme (`Basic …`) is not a
    /// keyward credential and is passed over.
    pub fn extract<'a, H: Fields + ?Sized>(
        &'a self,
        headers: &'a H,
        path: &'a str,
    ) -> Option<Credential<'a>> {
        for name in &self.key_headers {
            if let Some(value) = headers.field(name) {
                return Some(Credential {
                    key: value.trim(),
                    source: Source::Header(name),
                });
            }
        }
        if let Some(name) = &self.authorization_header
            && let Some(value) = headers.field(name)
            && let Some(key) = self.after_scheme(value)
        {
            return Some(Credential {
                key,
                source: Source::Header(name),
            });
        }
        if let Some(param) = &self.query_param
            && let Some(key) = query_value(path, param)
        {
            return Some(Credential {
                key,
                source: Source::QueryParam(param),
            });
        }
        None
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

/// The raw value of the first `name=` parameter of the path's query string.
/// Keys are letters, digits and `_`, so no percent-decoding is done: an
/// encoded key is refused as malformed.
fn query_value<'p>(path: &'p str, name: &str) -> Option<&'p str> {
    let (_, query) = path.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
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
    ) -> Option<&'a str> {
        sources.extract(h, path).map(|c| c.key)
    }

    #[test]
    fn x_api_key_holds_the_bare_key() {
        let s = KeySources::default();
        let h = headers(&[("x-api-key", " acme_k ")]);
        assert_eq!(
            s.extract(&h, "/"),
            Some(Credential {
                key: "acme_k",
                source: Source::Header("x-api-key")
            })
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
            let c = s.extract(&h, "/").unwrap();
            assert_eq!(c.key, "acme_k", "{value}");
            assert_eq!(c.source, Source::Header("authorization"));
        }
    }

    #[test]
    fn an_empty_scheme_value_is_a_presented_but_empty_key() {
        let s = KeySources::default();
        let h = headers(&[("authorization", "Bearer")]);
        assert_eq!(key_of(&s, &h, "/"), Some(""));
        let h = headers(&[("x-api-key", "")]);
        assert_eq!(key_of(&s, &h, "/"), Some(""));
    }

    #[test]
    fn other_schemes_are_not_keyward_credentials() {
        let s = KeySources::default();
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(s.extract(&h, "/"), None);
        // ...and do not hide a key in another header.
        let h = headers(&[("authorization", "Basic x"), ("x-api-key", "acme_k")]);
        assert_eq!(key_of(&s, &h, "/"), Some("acme_k"));
    }

    #[test]
    fn key_headers_come_before_authorization() {
        let s = KeySources::default();
        let h = headers(&[("authorization", "Bearer jwt"), ("x-api-key", "acme_k")]);
        assert_eq!(
            s.extract(&h, "/").unwrap().source,
            Source::Header("x-api-key")
        );
    }

    #[test]
    fn query_keys_only_when_enabled() {
        let off = KeySources::default();
        let h = headers(&[]);
        assert_eq!(off.extract(&h, "/orders?api_key=acme_k"), None);

        let on = KeySources {
            query_param: Some("api_key".into()),
            ..KeySources::default()
        };
        assert_eq!(
            on.extract(&h, "/orders?x=1&api_key=acme_k&y"),
            Some(Credential {
                key: "acme_k",
                source: Source::QueryParam("api_key")
            })
        );
        assert_eq!(
            key_of(&on, &h, "/orders?api_key=acme_k#frag"),
            Some("acme_k")
        );
        assert_eq!(key_of(&on, &h, "/orders?api_keyx=acme_k"), None);
        assert_eq!(key_of(&on, &h, "/orders"), None);
        let hdr = headers(&[("x-api-key", "from_header")]);
        assert_eq!(
            key_of(&on, &hdr, "/orders?api_key=acme_k"),
            Some("from_header"),
            "headers win over the query"
        );
    }

    #[test]
    fn sources_can_be_renamed_or_turned_off() {
        let s = KeySources {
            key_headers: vec!["x-token".into()],
            authorization_header: None,
            ..KeySources::default()
        };
        let h = headers(&[("x-api-key", "a"), ("authorization", "Bearer b")]);
        assert_eq!(s.extract(&h, "/"), None);
        let h = headers(&[("x-token", "c")]);
        assert_eq!(key_of(&s, &h, "/"), Some("c"));
    }
}
