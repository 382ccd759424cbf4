//! Envoy's `envoy.service.auth.v3.CheckResponse` for a decision, as prost
//! messages of keyward's own that declare only what keyward sends.
//!
//! Same wire format as the full message (tags and types from
//! third_party/envoy-proto): Envoy and envoy-types decode it as theirs.
//! Strings are `Bytes`, so constant header names, bodies and metadata keys
//! are sent from static memory, and a value used twice (the key id, the
//! project) is copied once. A `map<string, Value>` is, on the wire, a
//! repeated key/value entry, which is how the dynamic metadata is declared:
//! no map is built to be encoded.

use bytes::Bytes;

use crate::authz::{
    Action, Answer, Decision,
    answer::{KEY_ID_HEADER, PROJECT_HEADER, QUOTA_REMAINING_HEADER},
    credential::Source,
};

#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<RpcStatus>,
    #[prost(oneof = "HttpResponse", tags = "2, 3")]
    pub http_response: Option<HttpResponse>,
    #[prost(message, optional, tag = "4")]
    pub dynamic_metadata: Option<Struct>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HttpResponse {
    #[prost(message, tag = "2")]
    Denied(DeniedHttpResponse),
    #[prost(message, tag = "3")]
    Ok(OkHttpResponse),
}

/// `google.rpc.Status`, of which Envoy reads the code.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeniedHttpResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<HttpStatus>,
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<HeaderValueOption>,
    #[prost(bytes = "bytes", tag = "3")]
    pub body: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OkHttpResponse {
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<HeaderValueOption>,
    #[prost(bytes = "bytes", repeated, tag = "5")]
    pub headers_to_remove: Vec<Bytes>,
    #[prost(message, repeated, tag = "6")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    #[prost(bytes = "bytes", repeated, tag = "8")]
    pub query_parameters_to_remove: Vec<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValueOption {
    #[prost(message, optional, tag = "1")]
    pub header: Option<HeaderValue>,
    /// `HeaderValueOption.HeaderAppendAction`.
    #[prost(int32, tag = "3")]
    pub append_action: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `google.protobuf.Struct`: its `fields` map as entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Struct {
    #[prost(message, repeated, tag = "1")]
    pub fields: Vec<Field>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Field {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Value>,
}

/// `google.protobuf.Value`, with the two kinds keyward sends.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(oneof = "Kind", tags = "3, 4")]
    pub kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(bytes = "bytes", tag = "3")]
    String(Bytes),
    #[prost(bool, tag = "4")]
    Bool(bool),
}

/// `HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD`.
const OVERWRITE_IF_EXISTS_OR_ADD: i32 = 2;

/// Envoy's answer for a decision.
pub fn check_response(answer: &Answer<'_>) -> CheckResponse {
    let record = answer.record.as_ref();
    let key_id = record.map(|r| Bytes::copy_from_slice(r.id.as_str().as_bytes()));
    let project = record.map(|r| Bytes::copy_from_slice(r.project.as_bytes()));
    let (code, http_response) = match &answer.action {
        Action::Allow { identity, strip } => {
            let mut ok = OkHttpResponse::default();
            match identity {
                Some(identity) => {
                    // The identity is the answer's record; copied again only
                    // if it ever is not.
                    let same = record.is_some_and(|r| std::sync::Arc::ptr_eq(r, identity));
                    let (id, project) = match (&key_id, &project) {
                        (Some(id), Some(project)) if same => (id.clone(), project.clone()),
                        _ => (
                            Bytes::copy_from_slice(identity.id.as_str().as_bytes()),
                            Bytes::copy_from_slice(identity.project.as_bytes()),
                        ),
                    };
                    ok.headers = vec![
                        overwrite(Bytes::from_static(KEY_ID_HEADER.as_bytes()), id),
                        overwrite(Bytes::from_static(PROJECT_HEADER.as_bytes()), project),
                    ];
                }
                None => {
                    ok.headers_to_remove = vec![
                        Bytes::from_static(KEY_ID_HEADER.as_bytes()),
                        Bytes::from_static(PROJECT_HEADER.as_bytes()),
                    ]
                }
            }
            if let Some(remaining) = answer.quota_remaining {
                ok.response_headers_to_add = vec![overwrite(
                    Bytes::from_static(QUOTA_REMAINING_HEADER.as_bytes()),
                    Bytes::from(remaining.to_string()),
                )];
            }
            for source in strip {
                match source {
                    Source::Header(name) => ok.headers_to_remove.push(copy(name)),
                    Source::QueryParam(name) => ok.query_parameters_to_remove.push(copy(name)),
                }
            }
            (tonic::Code::Ok, HttpResponse::Ok(ok))
        }
        Action::Deny(refusal) => {
            let denied = DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(refusal.status()),
                }),
                headers: refusal
                    .headers()
                    .into_iter()
                    .map(|(name, value)| {
                        overwrite(Bytes::from_static(name.as_bytes()), Bytes::from(value))
                    })
                    .collect(),
                body: Bytes::from_static(refusal.body().as_bytes()),
            };
            (tonic::Code::PermissionDenied, HttpResponse::Denied(denied))
        }
    };
    CheckResponse {
        status: Some(RpcStatus { code: code as i32 }),
        http_response: Some(http_response),
        dynamic_metadata: Some(metadata(answer, key_id, project)),
    }
}

fn copy(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn overwrite(key: Bytes, value: Bytes) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue { key, value }),
        append_action: OVERWRITE_IF_EXISTS_OR_ADD,
    }
}

fn field(key: &'static str, kind: Kind) -> Field {
    Field {
        key: Bytes::from_static(key.as_bytes()),
        value: Some(Value { kind: Some(kind) }),
    }
}

fn constant(key: &'static str, value: &'static str) -> Field {
    field(key, Kind::String(Bytes::from_static(value.as_bytes())))
}

/// What Envoy's access logs can show as
/// `%DYNAMIC_METADATA(envoy.filters.http.ext_authz:key_id)%`. Envoy parses
/// and stores every field on every request, so an allowed request carries
/// only what identifies it; `required_scopes` comes with refusals and
/// `observe` in observe mode.
fn metadata(answer: &Answer<'_>, key_id: Option<Bytes>, project: Option<Bytes>) -> Struct {
    let mut fields = Vec::with_capacity(7);
    fields.push(constant("decision", answer.decision.as_str()));
    fields.push(constant("reason", answer.why.as_str()));
    if answer.observe {
        fields.push(field("observe", Kind::Bool(true)));
    }
    if let (Some(record), Some(key_id), Some(project)) = (&answer.record, key_id, project) {
        fields.push(field("key_id", Kind::String(key_id)));
        fields.push(field("project", Kind::String(project)));
        let scopes = Bytes::from(record.scopes.join(","));
        fields.push(field("scopes", Kind::String(scopes)));
    }
    if answer.decision != Decision::Allow
        && let Some(required) = answer.required.joined()
    {
        fields.push(field(
            "required_scopes",
            Kind::String(Bytes::from(required)),
        ));
    }
    Struct { fields }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Arc, time::Duration};

    use envoy_types::{
        ext_authz::v3::pb::{
            CheckResponse as Full, DeniedHttpResponse as FullDenied, HeaderAppendAction,
            HeaderValue as FullHeader, HeaderValueOption as FullOption, HttpResponse as FullHttp,
            HttpStatus as FullStatus, OkHttpResponse as FullOk,
        },
        pb::google::{
            protobuf::{Struct as FullStruct, Value as FullValue, value::Kind as FullKind},
            rpc,
        },
    };
    use prost::Message;

    use super::*;
    use crate::{
        authz::{Required, Why},
        decision::Reason,
        key::KeyId,
        record::KeyRecord,
    };

    /// The answer as envoy-types' full messages built it before the trimmed
    /// ones: what Envoy must keep reading.
    fn reference(answer: &Answer<'_>) -> Full {
        let option = |name: &str, value: &str| FullOption {
            header: Some(FullHeader {
                key: name.to_owned(),
                value: value.to_owned(),
                ..Default::default()
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        };
        let (code, http) = match &answer.action {
            Action::Allow { identity, strip } => {
                let mut ok = FullOk::default();
                match identity {
                    Some(r) => {
                        ok.headers = vec![
                            option(KEY_ID_HEADER, r.id.as_str()),
                            option(PROJECT_HEADER, &r.project),
                        ]
                    }
                    None => {
                        ok.headers_to_remove =
                            vec![KEY_ID_HEADER.to_owned(), PROJECT_HEADER.to_owned()]
                    }
                }
                if let Some(remaining) = answer.quota_remaining {
                    ok.response_headers_to_add =
                        vec![option(QUOTA_REMAINING_HEADER, &remaining.to_string())];
                }
                for source in strip {
                    match source {
                        Source::Header(n) => ok.headers_to_remove.push((*n).to_owned()),
                        Source::QueryParam(n) => {
                            ok.query_parameters_to_remove.push((*n).to_owned())
                        }
                    }
                }
                (tonic::Code::Ok, FullHttp::OkResponse(ok))
            }
            Action::Deny(refusal) => (
                tonic::Code::PermissionDenied,
                FullHttp::DeniedResponse(FullDenied {
                    status: Some(FullStatus {
                        code: i32::from(refusal.status()),
                    }),
                    headers: refusal
                        .headers()
                        .iter()
                        .map(|(n, v)| option(n, v))
                        .collect(),
                    body: refusal.body().to_owned(),
                }),
            ),
        };
        let string = |s: String| FullValue {
            kind: Some(FullKind::StringValue(s)),
        };
        let mut fields = HashMap::new();
        fields.insert(
            "decision".to_owned(),
            string(answer.decision.as_str().into()),
        );
        fields.insert("reason".to_owned(), string(answer.why.as_str().into()));
        if answer.observe {
            let yes = FullValue {
                kind: Some(FullKind::BoolValue(true)),
            };
            fields.insert("observe".to_owned(), yes);
        }
        if let Some(r) = &answer.record {
            fields.insert("key_id".to_owned(), string(r.id.as_str().into()));
            fields.insert("project".to_owned(), string(r.project.to_string()));
            fields.insert("scopes".to_owned(), string(r.scopes.join(",")));
        }
        if answer.decision != Decision::Allow
            && let Some(required) = answer.required.joined()
        {
            fields.insert("required_scopes".to_owned(), string(required));
        }
        Full {
            status: Some(rpc::Status {
                code: code as i32,
                ..Default::default()
            }),
            http_response: Some(http),
            dynamic_metadata: Some(FullStruct { fields }),
        }
    }

    fn record() -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: KeyId::generate(),
            project: "acme".into(),
            scopes: Arc::from(["orders:read".into(), "users:read".into()]),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        })
    }

    #[test]
    fn every_kind_of_answer_reads_as_the_full_message_built_it() {
        let strip = || vec![Source::Header("x-api-key"), Source::QueryParam("api_key")];
        let answers = [
            Answer::new(Why::Key(Reason::Ok), Some(record()), false, strip())
                .with_limits(None, None, Some(41))
                .with_required(Required::Listed("orders:read")),
            Answer::new(Why::Key(Reason::Ok), Some(record()), false, Vec::new()),
            Answer::new(Why::Key(Reason::Unknown), None, false, strip())
                .with_required(Required::Listed("orders:read, users:read")),
            Answer::new(
                Why::Key(Reason::InsufficientScope),
                Some(record()),
                true,
                strip(),
            )
            .with_required(Required::Listed("billing:read")),
            Answer::new(
                Why::Key(Reason::RateLimited),
                Some(record()),
                false,
                Vec::new(),
            )
            .with_limits(None, Some(Duration::from_millis(2500)), None),
            Answer::new(Why::PathNotNormal, None, false, Vec::new()),
        ];
        for answer in &answers {
            let sent = check_response(answer).encode_to_vec();
            let read = Full::decode(&sent[..]).unwrap();
            assert_eq!(read, reference(answer), "{:?}", answer.why);
        }
    }
}
