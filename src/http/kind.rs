//! Which side of the main port a request belongs to.
//!
//! Forward auth (`/authz/…`) is HTTP whatever its content-type: nginx and
//! Caddy pass a client's `content-type: application/grpc` along in their
//! sub-requests, and such a request must never reach the gRPC server.
//! Everything else is gRPC when its content-type says so, gRPC-Web when it
//! says that, and HTTP otherwise.

use http::{HeaderMap, header::CONTENT_TYPE};

/// The prefix every forward-auth path starts with.
pub const AUTHZ_PREFIX: &str = "/authz/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Grpc,
    GrpcWeb,
    Http,
}

impl Kind {
    pub fn of(path: &str, headers: &HeaderMap) -> Kind {
        if path.starts_with(AUTHZ_PREFIX) || path == "/authz" {
            return Kind::Http;
        }
        let Some(content_type) = headers.get(CONTENT_TYPE) else {
            return Kind::Http;
        };
        let content_type = content_type.as_bytes();
        if let Some(rest) = strip_prefix_ignore_case(content_type, b"application/grpc-web") {
            if rest.is_empty() || rest[0] == b'+' || rest[0] == b';' || rest[0] == b'-' {
                return Kind::GrpcWeb;
            }
            return Kind::Http;
        }
        match strip_prefix_ignore_case(content_type, b"application/grpc") {
            Some(rest) if rest.is_empty() || rest[0] == b'+' || rest[0] == b';' => Kind::Grpc,
            _ => Kind::Http,
        }
    }

    pub fn is_grpc(self) -> bool {
        self == Kind::Grpc
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&value[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn kind(path: &str, content_type: Option<&str>) -> Kind {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        Kind::of(path, &headers)
    }

    #[test]
    fn grpc_by_content_type() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC;x=1",
        ] {
            assert_eq!(
                kind("/keyward.v1.KeyService/Verify", Some(ct)),
                Kind::Grpc,
                "{ct}"
            );
        }
    }

    #[test]
    fn grpc_web_by_content_type() {
        for ct in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ] {
            assert_eq!(
                kind("/keyward.v1.KeyService/Verify", Some(ct)),
                Kind::GrpcWeb,
                "{ct}"
            );
        }
    }

    #[test]
    fn anything_else_is_http() {
        for ct in [
            None,
            Some("application/json"),
            Some("application/grpcx"),
            Some("text/plain"),
        ] {
            assert_eq!(
                kind("/keyward.v1.KeyService/Verify", ct),
                Kind::Http,
                "{ct:?}"
            );
        }
    }

    #[test]
    fn forward_auth_is_http_whatever_its_content_type() {
        for ct in [Some("application/grpc"), Some("application/grpc-web"), None] {
            assert_eq!(kind("/authz/nginx", ct), Kind::Http);
            assert_eq!(kind("/authz/envoy/x", ct), Kind::Http);
            assert_eq!(kind("/authz", ct), Kind::Http);
        }
    }
}
