//! A sub-request's headers as the check reads them: lower-case names,
//! one value per name, and the header family the endpoint does not trust
//! hidden, so that family can change nothing in the answer.
//!
//! A repeated header reads as its values joined with `,` (what it means in
//! HTTP, and what Envoy's gRPC ext_authz sends): two different keys in
//! `x-api-key` are then one malformed key, not the first of them. A value
//! that is not UTF-8 reads as `U+FFFD`: present, and no key.

use http::HeaderMap;

use crate::authz::Fields;

pub struct Headers<'a> {
    map: &'a HeaderMap,
    hidden: &'static [&'static str],
    /// Names that occur more than once, with their joined values.
    joined: Vec<(&'a str, String)>,
}

impl<'a> Headers<'a> {
    pub fn new(map: &'a HeaderMap, hidden: &'static [&'static str]) -> Self {
        let mut joined = Vec::new();
        // Only a map holding a repeated name pays for joining.
        if map.len() != map.keys_len() {
            for name in map.keys() {
                let values: Vec<&str> = map.get_all(name).iter().map(text).collect();
                if values.len() > 1 {
                    joined.push((name.as_str(), values.join(",")));
                }
            }
        }
        Self {
            map,
            hidden,
            joined,
        }
    }
}

fn text(value: &http::HeaderValue) -> &str {
    std::str::from_utf8(value.as_bytes()).unwrap_or("\u{fffd}")
}

impl Fields for Headers<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        if self.hidden.contains(&name) {
            return None;
        }
        if let Some((_, value)) = self.joined.iter().find(|(n, _)| *n == name) {
            return Some(value);
        }
        self.map.get(name).map(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_join_and_hidden_names_are_absent() {
        let mut map = HeaderMap::new();
        map.append("x-api-key", "acme_a".parse().unwrap());
        map.append("x-api-key", "acme_b".parse().unwrap());
        map.append("authorization", "Bearer acme_a".parse().unwrap());
        map.append("x-forwarded-uri", "/public".parse().unwrap());
        map.append("x-odd", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let headers = Headers::new(&map, &["x-forwarded-uri"]);
        assert_eq!(headers.field("x-api-key"), Some("acme_a,acme_b"));
        assert_eq!(headers.field("authorization"), Some("Bearer acme_a"));
        assert_eq!(headers.field("x-forwarded-uri"), None);
        assert_eq!(headers.field("x-odd"), Some("\u{fffd}"));
        assert_eq!(headers.field("x-absent"), None);
    }
}
