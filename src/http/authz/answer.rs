//! A decision as a forward-auth answer, in the one language every gateway
//! reads: any 2xx lets the request through, anything else refuses it.
//!
//! - Allow: `200`, empty body, `x-keyward-key-id` and `x-keyward-project`
//!   for the gateway to copy upstream (and `x-keyward-quota-remaining` for
//!   the client). For Envoy, `x-envoy-auth-headers-to-remove` names the
//!   credential headers (and, unidentified, the identity headers), which
//!   Envoy then removes from the upstream request; the other gateways strip
//!   them in their own configuration.
//! - Deny: the constant refusal of [`crate::authz::Refusal`], status,
//!   headers and body, so every bad key looks the same. On `/authz/nginx` a
//!   `429` is sent as `403` with the same `retry-after`: nginx turns any
//!   sub-request status but 2xx, 401 and 403 into a 500.
//! - Undecidable, or a sub-request naming no original request: the status
//!   `http::status` gives the error, with a constant body.

use http::{HeaderName, HeaderValue, StatusCode};

use super::original::Mode;
use crate::{
    authz::{
        Action, Answer, Refusal,
        answer::{KEY_ID_HEADER, PROJECT_HEADER, QUOTA_REMAINING_HEADER},
        credential::Source,
    },
    error::Error,
    http::{HttpResponse, reply, status},
};

/// Envoy's HTTP ext_authz removes the headers this lists (comma-separated)
/// from the request it forwards.
pub const ENVOY_REMOVE_HEADER: &str = "x-envoy-auth-headers-to-remove";

/// The answer for a decision.
pub fn response(mode: Mode, answer: &Answer<'_>) -> HttpResponse {
    match &answer.action {
        Action::Allow { identity, strip } => {
            let mut response = reply::empty(StatusCode::OK);
            let headers = response.headers_mut();
            let mut remove: Vec<&str> = Vec::new();
            match identity {
                Some(record) => {
                    insert(headers, KEY_ID_HEADER, record.id.as_str());
                    insert(headers, PROJECT_HEADER, &record.project);
                }
                None => remove.extend([KEY_ID_HEADER, PROJECT_HEADER]),
            }
            if let Some(remaining) = answer.quota_remaining {
                insert(headers, QUOTA_REMAINING_HEADER, &remaining.to_string());
            }
            if mode == Mode::Envoy {
                remove.extend(strip.iter().filter_map(|source| match source {
                    Source::Header(name) => Some(*name),
                    // A query key cannot be removed this way; docs/forward_auth.md
                    // says to leave query keys off behind gateways.
                    Source::QueryParam(_) => None,
                }));
                if !remove.is_empty() {
                    insert(headers, ENVOY_REMOVE_HEADER, &remove.join(","));
                }
            }
            response
        }
        Action::Deny(refusal) => refused(mode, *refusal),
    }
}

/// The constant refusal, with nginx's status for a `429`.
pub fn refused(mode: Mode, refusal: Refusal) -> HttpResponse {
    let code = match (mode, refusal) {
        (Mode::Nginx, Refusal::TooManyRequests { .. }) => StatusCode::FORBIDDEN,
        _ => StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN),
    };
    let mut response = reply::full(code, refusal.body());
    for (name, value) in refusal.headers() {
        insert(response.headers_mut(), name, &value);
    }
    response
}

/// An error's status (through `http::status`, the one mapping) with a
/// constant body: the error's text may name internals and stays in logs.
pub fn failed(error: Error) -> HttpResponse {
    let code = status::for_code(tonic::Status::from(error).code());
    let body = if code == StatusCode::BAD_REQUEST {
        Refusal::BadRequest.body()
    } else {
        r#"{"error":"unavailable"}"#
    };
    reply::json(code, body)
}

/// Sets a header keyward built itself; a value that is no header value
/// (it cannot come from a client) is left out rather than sent broken.
fn insert(headers: &mut http::HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{authz::Why, decision::Reason, key::KeyId, record::KeyRecord};

    fn record() -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: KeyId::generate(),
            project: "acme".into(),
            scopes: Arc::from([]),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        })
    }

    fn header<'r>(response: &'r HttpResponse, name: &str) -> Option<&'r str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn allow_is_an_empty_200_with_the_identity() {
        let r = record();
        let strip = vec![Source::Header("x-api-key"), Source::Header("authorization")];
        let answer = Answer::new(Why::Key(Reason::Ok), Some(r.clone()), false, strip).with_limits(
            None,
            None,
            Some(41),
        );
        for mode in Mode::ALL {
            let response = response(mode, &answer);
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header(&response, KEY_ID_HEADER), Some(r.id.as_str()));
            assert_eq!(header(&response, PROJECT_HEADER), Some("acme"));
            assert_eq!(header(&response, QUOTA_REMAINING_HEADER), Some("41"));
            let remove = header(&response, ENVOY_REMOVE_HEADER);
            match mode {
                Mode::Envoy => assert_eq!(remove, Some("x-api-key,authorization")),
                Mode::Nginx | Mode::Forwarded => assert_eq!(remove, None),
            }
        }
    }

    #[test]
    fn observe_lets_through_unidentified() {
        let answer = Answer::new(Why::Key(Reason::Revoked), Some(record()), true, vec![]);
        let response = response(Mode::Envoy, &answer);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, KEY_ID_HEADER), None);
        assert_eq!(
            header(&response, ENVOY_REMOVE_HEADER),
            Some("x-keyward-key-id,x-keyward-project")
        );
    }

    #[test]
    fn refusals_keep_their_status_but_nginx_gets_403_for_429() {
        let limited = Refusal::TooManyRequests {
            retry_after_secs: 7,
        };
        for (mode, code) in [
            (Mode::Envoy, 429),
            (Mode::Forwarded, 429),
            (Mode::Nginx, 403),
        ] {
            let response = refused(mode, limited);
            assert_eq!(response.status().as_u16(), code, "{mode:?}");
            assert_eq!(header(&response, "retry-after"), Some("7"));
        }
        let response = refused(Mode::Nginx, Refusal::Unauthorized);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&response, "www-authenticate"),
            Some(r#"ApiKey realm="keyward""#)
        );
    }

    #[test]
    fn errors_are_never_a_success() {
        let unavailable = failed(Error::Unavailable("postgres is down".into()));
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bad = failed(Error::invalid("x-original-uri", "missing"));
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }
}
