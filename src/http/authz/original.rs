//! How each forward-auth endpoint rebuilds the request it is asked about.
//!
//! Every gateway names the original request differently, and every one of
//! them passes some of the client's own headers along. So the auth URL,
//! which only the operator writes, decides which headers are trusted, and
//! the other family is never read (see [`Mode::ignored`]):
//! - `/authz/envoy/<path>`: Envoy's HTTP ext_authz (`path_prefix:
//!   /authz/envoy`) sends the original method as its own and the original
//!   path and query after the prefix.
//! - `/authz/nginx`: nginx `auth_request` with `X-Original-Method` and
//!   `X-Original-URI`, which its `proxy_set_header` overwrites.
//! - `/authz/forwarded`: Traefik ForwardAuth, Caddy `forward_auth` and
//!   HAProxy with `X-Forwarded-Method` and `X-Forwarded-Uri`, which those
//!   gateways set themselves.
//!
//! Nothing is guessed: a missing, half or repeated pair, an absolute-form
//! target or one without a canonical path is refused.

use http::{HeaderMap, Method, Uri};

use crate::{
    authz::path::{self, PathError},
    http::Mount,
};

/// The path Envoy's `path_prefix` must name.
pub const ENVOY_PREFIX: &str = "/authz/envoy";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Envoy,
    Nginx,
    Forwarded,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Envoy, Mode::Nginx, Mode::Forwarded];

    /// The name spans and logs record.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Envoy => "envoy",
            Mode::Nginx => "nginx",
            Mode::Forwarded => "forwarded",
        }
    }

    /// Where the endpoint is mounted, on the raw path.
    pub fn mount(self) -> Mount {
        match self {
            Mode::Envoy => Mount::Subtree(ENVOY_PREFIX),
            Mode::Nginx => Mount::Exact("/authz/nginx"),
            Mode::Forwarded => Mount::Exact("/authz/forwarded"),
        }
    }

    /// The headers holding the original method and target.
    fn trusted(self) -> Option<(&'static str, &'static str)> {
        match self {
            Mode::Envoy => None,
            Mode::Nginx => Some(("x-original-method", "x-original-uri")),
            Mode::Forwarded => Some(("x-forwarded-method", "x-forwarded-uri")),
        }
    }

    /// Headers the check must not see: the family another gateway would
    /// set, which this one passes through from the client untouched.
    pub fn ignored(self) -> &'static [&'static str] {
        const ORIGINAL: [&str; 2] = ["x-original-method", "x-original-uri"];
        const FORWARDED: [&str; 2] = ["x-forwarded-method", "x-forwarded-uri"];
        const BOTH: [&str; 4] = [ORIGINAL[0], ORIGINAL[1], FORWARDED[0], FORWARDED[1]];
        match self {
            Mode::Envoy => &BOTH,
            Mode::Nginx => &FORWARDED,
            Mode::Forwarded => &ORIGINAL,
        }
    }
}

/// The request a sub-request asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original<'a> {
    pub method: &'a str,
    /// Origin-form: path and query.
    pub target: &'a str,
}

/// Why a sub-request names no original request. Logged by name; the
/// gateway sees only `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginalError {
    #[error("neither {0} nor {1} is set")]
    Missing(&'static str, &'static str),
    #[error("{0} is set but {1} is not")]
    Half(&'static str, &'static str),
    #[error("{0} is repeated")]
    Repeated(&'static str),
    #[error("{0} is not a method or target")]
    Unreadable(&'static str),
    #[error("the original path has no canonical form: {0}")]
    NotCanonical(PathError),
}

impl OriginalError {
    /// Stable snake-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginalError::Missing(..) => "missing",
            OriginalError::Half(..) => "half",
            OriginalError::Repeated(_) => "repeated",
            OriginalError::Unreadable(_) => "unreadable",
            OriginalError::NotCanonical(_) => "not_canonical",
        }
    }
}

/// The original method and target of a sub-request to `mode`'s endpoint.
pub fn rebuild<'a>(
    mode: Mode,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Original<'a>, OriginalError> {
    let original = match mode.trusted() {
        None => {
            let target = uri.path_and_query().map_or("", |p| p.as_str());
            Original {
                method: method.as_str(),
                // The router mounts this mode on the prefix's subtree.
                target: target.strip_prefix(ENVOY_PREFIX).unwrap_or(""),
            }
        }
        Some((method_header, target_header)) => {
            let method = single(headers, method_header)?;
            let target = single(headers, target_header)?;
            let (method, target) = match (method, target) {
                (Some(m), Some(t)) => (m, t),
                (None, None) => return Err(OriginalError::Missing(method_header, target_header)),
                (Some(_), None) => return Err(OriginalError::Half(method_header, target_header)),
                (None, Some(_)) => return Err(OriginalError::Half(target_header, method_header)),
            };
            if Method::from_bytes(method.as_bytes()).is_err() {
                return Err(OriginalError::Unreadable(method_header));
            }
            Original { method, target }
        }
    };
    // Absolute-form (`http://h/p`), `*` and the empty target fail here too.
    path::canonical(original.target).map_err(OriginalError::NotCanonical)?;
    Ok(original)
}

/// The one value of `name`: none, or an error when it is repeated or not
/// visible ASCII.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, OriginalError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OriginalError::Repeated(name));
    }
    match value.to_str() {
        Ok(text) if !text.is_empty() => Ok(Some(text.trim())),
        _ => Err(OriginalError::Unreadable(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn rebuilt(
        mode: Mode,
        uri: &str,
        pairs: &[(&'static str, &'static str)],
    ) -> Result<(String, String), OriginalError> {
        let (method, uri, headers) = (Method::PATCH, uri.parse().unwrap(), headers(pairs));
        rebuild(mode, &method, &uri, &headers).map(|o| (o.method.to_owned(), o.target.to_owned()))
    }

    fn ok(method: &str, target: &str) -> Result<(String, String), OriginalError> {
        Ok((method.to_owned(), target.to_owned()))
    }

    #[test]
    fn envoy_takes_its_own_method_and_the_path_after_the_prefix() {
        let forged = [
            ("x-original-method", "GET"),
            ("x-original-uri", "/public"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/public"),
        ];
        assert_eq!(
            rebuilt(Mode::Envoy, "/authz/envoy/orders/1?x=1", &forged),
            ok("PATCH", "/orders/1?x=1")
        );
        assert_eq!(rebuilt(Mode::Envoy, "/authz/envoy/", &[]), ok("PATCH", "/"));
        for (uri, error) in [
            ("/authz/envoy", PathError::NotAbsolute),
            ("/authz/envoy?x=1", PathError::NotAbsolute),
            ("/authz/envoy/a/../admin", PathError::DotSegment),
            ("/authz/envoy//admin", PathError::EmptySegment),
        ] {
            assert_eq!(
                rebuilt(Mode::Envoy, uri, &[]),
                Err(OriginalError::NotCanonical(error)),
                "{uri}"
            );
        }
    }

    #[test]
    fn nginx_and_forwarded_read_their_own_pair_only() {
        let both = [
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/orders/1"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/public?a=b"),
        ];
        assert_eq!(
            rebuilt(Mode::Nginx, "/authz/nginx", &both),
            ok("DELETE", "/orders/1")
        );
        assert_eq!(
            rebuilt(Mode::Forwarded, "/authz/forwarded", &both),
            ok("GET", "/public?a=b")
        );
        // The sub-request's own method and path say nothing.
        assert_eq!(
            rebuilt(Mode::Nginx, "/authz/nginx", &both[..2]),
            ok("DELETE", "/orders/1")
        );
        assert_eq!(
            rebuilt(Mode::Nginx, "/authz/nginx", &both[2..]),
            Err(OriginalError::Missing(
                "x-original-method",
                "x-original-uri"
            ))
        );
        assert_eq!(
            rebuilt(Mode::Forwarded, "/authz/forwarded", &both[..2]),
            Err(OriginalError::Missing(
                "x-forwarded-method",
                "x-forwarded-uri"
            ))
        );
    }

    #[test]
    fn half_repeated_and_unreadable_pairs_are_refused() {
        let uri = "/authz/nginx";
        assert_eq!(
            rebuilt(Mode::Nginx, uri, &[("x-original-uri", "/a")]),
            Err(OriginalError::Half("x-original-uri", "x-original-method"))
        );
        assert_eq!(
            rebuilt(Mode::Nginx, uri, &[("x-original-method", "GET")]),
            Err(OriginalError::Half("x-original-method", "x-original-uri"))
        );
        let repeated = [
            ("x-original-method", "GET"),
            ("x-original-uri", "/public"),
            ("x-original-uri", "/admin"),
        ];
        assert_eq!(
            rebuilt(Mode::Nginx, uri, &repeated),
            Err(OriginalError::Repeated("x-original-uri"))
        );
        for (method, target, bad) in [
            ("", "/a", "x-original-method"),
            ("G ET", "/a", "x-original-method"),
            ("GET", "", "x-original-uri"),
        ] {
            let pairs = [("x-original-method", method), ("x-original-uri", target)];
            assert_eq!(
                rebuilt(Mode::Nginx, uri, &pairs),
                Err(OriginalError::Unreadable(bad)),
                "{method:?} {target:?}"
            );
        }
    }

    #[test]
    fn absolute_form_and_non_canonical_targets_are_refused() {
        for (target, error) in [
            ("http://api.example/orders", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("orders", PathError::NotAbsolute),
            ("/orders/%2e%2e/admin", PathError::DotSegment),
            ("/orders;x=1", PathError::PathParameter),
            ("/admin%2Fx", PathError::EncodedDelimiter),
        ] {
            let pairs = [("x-forwarded-method", "GET"), ("x-forwarded-uri", target)];
            assert_eq!(
                rebuilt(Mode::Forwarded, "/authz/forwarded", &pairs),
                Err(OriginalError::NotCanonical(error)),
                "{target}"
            );
        }
        // Encoded unreserved characters have a canonical form: accepted,
        // and the rules match that form.
        let pairs = [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/%61dmin"),
        ];
        assert_eq!(
            rebuilt(Mode::Forwarded, "/authz/forwarded", &pairs),
            ok("GET", "/%61dmin")
        );
    }
}
