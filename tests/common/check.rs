//! Calling `envoy.service.auth.v3.Authorization/Check` as Envoy does, and
//! reading its answers: shared by the ext_authz test files.

use std::{collections::HashMap, time::Duration};

use envoy_types::{
    ext_authz::v3::pb::{
        CheckRequest, CheckResponse, DeniedHttpResponse, HttpResponse, OkHttpResponse,
    },
    pb::{
        envoy::config::core::v3::{Address, SocketAddress, address, socket_address},
        envoy::service::auth::v3::{
            AttributeContext, attribute_context, authorization_client::AuthorizationClient,
        },
        google::protobuf::value::Kind,
    },
};
use tonic::{Code, transport::Channel};

use super::{TestApp, TestDb, client::Api};

type Client = AuthorizationClient<Channel>;

/// One request as Envoy describes it.
#[derive(Default, Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub context: Vec<(&'static str, &'static str)>,
    /// The downstream peer's address, as Envoy reports it.
    pub peer: Option<&'static str>,
}

pub fn get(path: &str) -> Req {
    Req {
        method: "GET",
        path: path.into(),
        ..Default::default()
    }
}

impl Req {
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn key(self, key: &str) -> Self {
        self.header("x-api-key", key)
    }

    pub fn ctx(mut self, name: &'static str, value: &'static str) -> Self {
        self.context.push((name, value));
        self
    }

    pub fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    pub fn peer(mut self, address: &'static str) -> Self {
        self.peer = Some(address);
        self
    }
}

pub async fn try_check(client: &mut Client, req: Req) -> Result<CheckResponse, tonic::Status> {
    let mut headers: HashMap<String, String> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    headers.insert(":path".into(), req.path.clone());
    let source = req.peer.map(|ip| attribute_context::Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(40000)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    });
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            source,
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: req.method.into(),
                    path: req.path,
                    host: "api.example".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: req
                .context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
    };
    client.check(request).await.map(|r| r.into_inner())
}

pub async fn check(client: &mut Client, req: Req) -> CheckResponse {
    try_check(client, req).await.unwrap()
}

pub fn ok(response: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(
        response.status.as_ref().unwrap().code,
        Code::Ok as i32,
        "{response:?}"
    );
    match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("expected allow, got {other:?}"),
    }
}

pub fn denied(response: &CheckResponse) -> &DeniedHttpResponse {
    assert_eq!(
        response.status.as_ref().unwrap().code,
        Code::PermissionDenied as i32,
        "{response:?}"
    );
    match &response.http_response {
        Some(HttpResponse::DeniedResponse(d)) => d,
        other => panic!("expected deny, got {other:?}"),
    }
}

pub fn status(d: &DeniedHttpResponse) -> i32 {
    d.status.as_ref().unwrap().code
}

pub fn header<'a>(ok: &'a OkHttpResponse, name: &str) -> Option<&'a str> {
    ok.headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

pub fn meta(response: &CheckResponse, field: &str) -> Option<String> {
    let value = response.dynamic_metadata.as_ref()?.fields.get(field)?;
    match value.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        Kind::BoolValue(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    }
}

pub struct Keys {
    pub app: TestApp,
    pub api: Api,
    pub _config: tempfile::TempDir,
}

impl Keys {
    pub async fn start(
        db: &TestDb,
        config_toml: &str,
        store: Option<std::sync::Arc<dyn keyward::store::KeyStore>>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, config_toml).unwrap();
        let config = super::config(&db.url, &["--config", path.to_str().unwrap()]);
        let app = TestApp::spawn_with(config, store).await;
        let api = app.api().await;
        Self {
            app,
            api,
            _config: dir,
        }
    }

    pub async fn authz(&self) -> Client {
        self.api.authz().await
    }

    /// Issues an `acme` key: (secret, id).
    pub async fn issue(
        &mut self,
        label: &str,
        scopes: &[&str],
        expires_in: Option<Duration>,
    ) -> (String, String) {
        self.api.issue_expiring(label, scopes, expires_in).await
    }

    pub async fn revoke(&mut self, id: &str) {
        self.api.revoke_id(id, "test").await;
    }
}
