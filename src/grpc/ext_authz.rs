//! `envoy.service.auth.v3.Authorization/Check`: Envoy's request attributes
//! in, [`Authz::check`], Envoy's answer out.
//!
//! Allowed: status OK, identity headers set (overwriting any the client
//! sent), the credential removed. Denied: status PERMISSION_DENIED with the
//! constant refusal of [`crate::authz::Refusal`]. Undecidable: a gRPC error
//! (UNAVAILABLE), so Envoy fails closed. Dynamic metadata (`decision`,
//! `reason`, `key_id`, `project`, `scopes`; `required_scopes` when refused,
//! `observe` in observe mode) goes to Envoy for its access logs.

use std::{collections::HashMap, sync::Arc};

use envoy_types::{
    ext_authz::v3::pb::{
        Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
        HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
    },
    pb::{
        envoy::config::core::v3::{HeaderMap, address::Address},
        google::{
            protobuf::{Struct, Value, value::Kind},
            rpc,
        },
    },
};
use tonic::{Request, Response, Status};

use crate::{
    authz::{
        Action, Answer, Authz, CheckInput, Decision, Fields,
        answer::{KEY_ID_HEADER, PROJECT_HEADER, QUOTA_REMAINING_HEADER},
        credential::Source,
    },
    error::Error,
    telemetry::{decision::Observed, metrics::Rpc, otel},
};

/// Largest Check request decoded. Envoy forwards up to 60 KiB of request
/// headers by default (`max_request_headers_kb`) plus the path and
/// attributes; a bigger request fails the check, which Envoy treats as a
/// denial.
pub const MAX_CHECK_BYTES: usize = 128 * 1024;

pub struct ExtAuthzService {
    authz: Arc<Authz>,
}

impl ExtAuthzService {
    pub fn new(authz: Arc<Authz>) -> Self {
        Self { authz }
    }
}

/// Headers as Envoy sends them: the `headers` map, or `header_map` when the
/// filter sets `encode_raw_headers`.
struct EnvoyHeaders<'a> {
    map: &'a HashMap<String, String>,
    raw: Option<&'a HeaderMap>,
}

impl Fields for EnvoyHeaders<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        if let Some(value) = self.map.get(name) {
            return Some(value);
        }
        self.raw?
            .headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| std::str::from_utf8(&h.raw_value).ok())
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
        let peer = attributes
            .source
            .and_then(|s| s.address)
            .and_then(|a| match a.address {
                Some(Address::SocketAddress(socket)) => socket.address.parse().ok(),
                _ => None,
            });
        // The caller's trace context travels in the checked request's headers.
        let observed = Observed::start(Rpc::Check, || otel::from_headers(&http.headers));
        let headers = EnvoyHeaders {
            map: &http.headers,
            raw: http.header_map.as_ref(),
        };
        let input = CheckInput {
            method: &http.method,
            path: &http.path,
            headers: &headers,
            context: &attributes.context_extensions,
            peer,
        };
        let answer = match self.authz.check(&input).await {
            Ok(answer) => answer,
            Err(error) => {
                observed.finish_check(None);
                return Err(Error::from(error).into());
            }
        };
        let response = check_response(&answer);
        observed.finish_check(Some(&answer));
        Ok(Response::new(response))
    }
}

/// Envoy's answer for a decision.
pub fn check_response(answer: &Answer<'_>) -> CheckResponse {
    let (status, http_response) = match &answer.action {
        Action::Allow { identity, strip } => {
            let mut ok = OkHttpResponse::default();
            match identity {
                Some(record) => {
                    ok.headers = vec![
                        overwrite(KEY_ID_HEADER, record.id.as_str()),
                        overwrite(PROJECT_HEADER, &record.project),
                    ];
                }
                None => {
                    ok.headers_to_remove = vec![KEY_ID_HEADER.to_owned(), PROJECT_HEADER.to_owned()]
                }
            }
            if let Some(remaining) = answer.quota_remaining {
                ok.response_headers_to_add =
                    vec![overwrite(QUOTA_REMAINING_HEADER, &remaining.to_string())];
            }
            for source in strip {
                match source {
                    Source::Header(name) => ok.headers_to_remove.push((*name).to_owned()),
                    Source::QueryParam(name) => {
                        ok.query_parameters_to_remove.push((*name).to_owned())
                    }
                }
            }
            (rpc_status(tonic::Code::Ok), HttpResponse::OkResponse(ok))
        }
        Action::Deny(refusal) => {
            let denied = DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(refusal.status()),
                }),
                headers: refusal
                    .headers()
                    .into_iter()
                    .map(|(name, value)| overwrite(name, &value))
                    .collect(),
                body: refusal.body().to_owned(),
            };
            (
                rpc_status(tonic::Code::PermissionDenied),
                HttpResponse::DeniedResponse(denied),
            )
        }
    };
    CheckResponse {
        status: Some(status),
        http_response: Some(http_response),
        dynamic_metadata: Some(metadata(answer)),
    }
}

fn rpc_status(code: tonic::Code) -> rpc::Status {
    rpc::Status {
        code: code as i32,
        ..Default::default()
    }
}

fn overwrite(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: value.to_owned(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn string(value: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.into())),
    }
}

/// What Envoy's access logs can show as
/// `%DYNAMIC_METADATA(envoy.filters.http.ext_authz:key_id)%`. Envoy parses
/// and stores every field on every request, so an allowed request carries
/// only what identifies it; `required_scopes` comes with refusals and
/// `observe` in observe mode.
fn metadata(answer: &Answer<'_>) -> Struct {
    let mut fields = HashMap::with_capacity(7);
    fields.insert("decision".to_owned(), string(answer.decision.as_str()));
    fields.insert("reason".to_owned(), string(answer.why.as_str()));
    if answer.observe {
        fields.insert(
            "observe".to_owned(),
            Value {
                kind: Some(Kind::BoolValue(true)),
            },
        );
    }
    if let Some(record) = &answer.record {
        fields.insert("key_id".to_owned(), string(record.id.as_str()));
        fields.insert("project".to_owned(), string(&*record.project));
        fields.insert("scopes".to_owned(), string(record.scopes.join(",")));
    }
    if answer.decision != Decision::Allow
        && let Some(required) = answer.required.joined()
    {
        fields.insert("required_scopes".to_owned(), string(required));
    }
    Struct { fields }
}
