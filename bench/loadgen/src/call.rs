//! One call of the load: which RPC, with which key, and whether its answer
//! is the expected one. Below the load loop, which only counts answers.

use std::{
    io::BufRead,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use anyhow::Context;
use envoy_types::{
    ext_authz::v3::pb::{CheckRequest, HttpResponse},
    pb::{
        envoy::service::auth::v3::authorization_client::AuthorizationClient,
        google::protobuf::value::Kind,
    },
};
use keyward::{
    key::format,
    proto::v1::{Reason, VerifyRequest, VerifyResponse, key_service_client::KeyServiceClient},
};
use prost::Message;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Rpc {
    /// `keyward.v1.KeyService/Verify`.
    Verify,
    /// `grpc.health.v1.Health/Check` (the baseline: what tonic itself costs).
    Health,
    /// `envoy.service.auth.v3.Authorization/Check`, as Envoy's ext_authz
    /// filter calls it with its default settings (a captured request, see
    /// `check_request`): the key in an `x-api-key` header, the required
    /// scopes in the route's `keyward_scopes` context extension.
    Check,
    /// Verify over the Connect protocol with JSON (`POST
    /// /keyward.v1.KeyService/Verify`, `application/json`), on the same
    /// HTTP/2 connections as the gRPC calls.
    ConnectVerify,
}

/// What a correct Verify or Check answer is; anything else counts as
/// `wrong`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Expect {
    Allowed,
    Unknown,
}

#[derive(clap::Args)]
pub struct KeySet {
    /// Plaintext keys, one a line (from `seed`).
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// First line of the file to use.
    #[arg(long, default_value_t = 0)]
    key_offset: usize,
    /// How many lines from there (default: all).
    #[arg(long)]
    key_count: Option<usize>,
    /// Send a fresh, well-formed key that no one issued with every request
    /// (a flood of unknown keys) instead of keys from the file.
    #[arg(long)]
    unknown: bool,
    /// Required scopes of every Verify or Check request.
    #[arg(long = "scope", default_value = "orders:read")]
    scopes: Vec<String>,
}

/// Reads `count` keys (all when `None`) from line `offset` on.
pub fn read_keys(path: &Path, offset: usize, count: usize) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read keys from {}", path.display()))?;
    let keys = std::io::BufReader::new(file)
        .lines()
        .skip(offset)
        .take(count)
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!keys.is_empty(), "no keys in {}", path.display());
    Ok(keys)
}

pub struct Keys {
    pub list: Vec<String>,
    pub unknown: bool,
    pub scopes: Vec<String>,
}

impl Keys {
    pub fn load(set: &KeySet, rpc: Rpc) -> anyhow::Result<Self> {
        let list = match (&set.keys_file, rpc, set.unknown) {
            (Some(file), Rpc::Verify | Rpc::Check | Rpc::ConnectVerify, false) => {
                read_keys(file, set.key_offset, set.key_count.unwrap_or(usize::MAX))?
            }
            (None, Rpc::Verify | Rpc::Check | Rpc::ConnectVerify, false) => {
                anyhow::bail!("Verify and Check need --keys-file or --unknown")
            }
            _ => Vec::new(),
        };
        Ok(Self {
            list,
            unknown: set.unknown,
            scopes: set.scopes.clone(),
        })
    }

    pub fn key(&self, index: usize) -> String {
        if self.unknown {
            format::generate("bench").into_exposed()
        } else {
            self.list[index % self.list.len()].clone()
        }
    }

    pub fn request(&self, index: usize) -> VerifyRequest {
        VerifyRequest {
            key: self.key(index),
            required_scopes: self.scopes.clone(),
            client_ip: String::new(),
        }
    }
}

/// What Envoy 1.40 sent for `GET /orders/1?expand=items` with the filter's
/// default settings (every request header, peer and destination addresses,
/// request id and time, the route's context extensions and metadata),
/// captured by tests/fixtures/envoy_check/capture.py.
const ENVOY_CHECK: &[u8] = include_bytes!("../../../tests/fixtures/envoy_check/headers.pb");

/// The captured Envoy request with `key` in its `x-api-key` header and the
/// required scopes in its `keyward_scopes` context extension.
pub fn check_request(key: String, scopes: &[String]) -> CheckRequest {
    static CAPTURED: OnceLock<CheckRequest> = OnceLock::new();
    let mut request = CAPTURED
        .get_or_init(|| {
            CheckRequest::decode(ENVOY_CHECK).expect("the captured CheckRequest decodes")
        })
        .clone();
    let attributes = request.attributes.get_or_insert_default();
    attributes
        .context_extensions
        .insert("keyward_scopes".to_owned(), scopes.join(","));
    if let Some(http) = attributes.request.as_mut().and_then(|r| r.http.as_mut()) {
        http.headers.insert("x-api-key".to_owned(), key);
    }
    request
}

pub enum Caller {
    Verify(KeyServiceClient<Channel>, Expect),
    ConnectVerify(Channel, Expect),
    Health(HealthClient<Channel>),
    Check(AuthorizationClient<Channel>, Expect),
}

/// What one call came to.
pub enum Answer {
    Expected,
    Wrong,
    Error,
}

impl Caller {
    pub fn new(rpc: Rpc, channel: Channel, expect: Expect) -> Self {
        match rpc {
            Rpc::Verify => Caller::Verify(KeyServiceClient::new(channel), expect),
            Rpc::Health => Caller::Health(HealthClient::new(channel)),
            Rpc::Check => Caller::Check(AuthorizationClient::new(channel), expect),
            Rpc::ConnectVerify => Caller::ConnectVerify(channel, expect),
        }
    }

    pub async fn call(&mut self, keys: &Keys, index: usize) -> Answer {
        match self {
            Caller::Verify(client, expect) => match client.verify(keys.request(index)).await {
                Ok(response) => verify_answer(&response.into_inner(), *expect),
                Err(_) => Answer::Error,
            },
            Caller::ConnectVerify(channel, expect) => {
                match connect_verify(channel, &keys.request(index)).await {
                    Some(response) => verify_answer(&response, *expect),
                    None => Answer::Error,
                }
            }
            Caller::Health(client) => match client.check(HealthCheckRequest::default()).await {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => Answer::Expected,
                Ok(_) => Answer::Wrong,
                Err(_) => Answer::Error,
            },
            Caller::Check(client, expect) => {
                let request = check_request(keys.key(index), &keys.scopes);
                match client.check(request).await {
                    Ok(response) => {
                        if check_answer_is(&response.into_inner(), *expect) {
                            Answer::Expected
                        } else {
                            Answer::Wrong
                        }
                    }
                    Err(_) => Answer::Error,
                }
            }
        }
    }
}

fn verify_answer(r: &VerifyResponse, expect: Expect) -> Answer {
    let expected = match expect {
        Expect::Allowed => r.allowed && r.reason == Reason::Ok as i32,
        Expect::Unknown => !r.allowed && r.reason == Reason::Unknown as i32,
    };
    if expected {
        Answer::Expected
    } else {
        Answer::Wrong
    }
}

/// One Connect JSON Verify over `channel` (tonic's channel is an HTTP/2
/// client that fills in the scheme and authority); `None` for anything but
/// a 200 with a VerifyResponse.
async fn connect_verify(channel: &mut Channel, request: &VerifyRequest) -> Option<VerifyResponse> {
    use http_body_util::BodyExt;
    use tower_service::Service;
    let body = serde_json::to_vec(request).ok()?;
    let request = http::Request::post("/keyward.v1.KeyService/Verify")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("connect-protocol-version", "1")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(body),
        )))
        .ok()?;
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .ok()?;
    let response = channel.call(request).await.ok()?;
    if response.status() != http::StatusCode::OK {
        return None;
    }
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// Whether a Check answer is the expected one: allowed is status OK with an
/// OK response; unknown is PERMISSION_DENIED with a denied response and
/// `reason: unknown` in the dynamic metadata.
fn check_answer_is(
    response: &envoy_types::ext_authz::v3::pb::CheckResponse,
    expect: Expect,
) -> bool {
    let code = response.status.as_ref().map_or(-1, |s| s.code);
    let reason = response
        .dynamic_metadata
        .as_ref()
        .and_then(|m| m.fields.get("reason"))
        .and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.as_str()),
            _ => None,
        });
    match expect {
        Expect::Allowed => {
            code == tonic::Code::Ok as i32
                && matches!(response.http_response, Some(HttpResponse::OkResponse(_)))
        }
        Expect::Unknown => {
            code == tonic::Code::PermissionDenied as i32
                && matches!(
                    response.http_response,
                    Some(HttpResponse::DeniedResponse(_))
                )
                && reason == Some("unknown")
        }
    }
}
