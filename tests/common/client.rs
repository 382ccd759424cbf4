//! The one client integration tests talk to keyward through: the admin
//! bearer, request shapes and unwrapping live here, so a test reads as the
//! calls it makes.

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use keyward::proto::timestamp::Timestamp;
use keyward::proto::v1::{self as pb, key_service_client::KeyServiceClient};
use tonic::{Request, Response, Status, metadata::MetadataValue, transport::Channel};

/// A KeyService connection plus the admin key its admin calls carry.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub grpc: KeyServiceClient<Channel>,
    pub admin: String,
}

/// Scope names as the protocol carries them.
pub fn scopes(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// An Issue for `project` with `label` and `scopes`, nothing else set.
pub fn issue_request(project: &str, label: &str, names: &[&str]) -> pb::IssueRequest {
    pb::IssueRequest {
        project: project.into(),
        label: label.into(),
        scopes: scopes(names),
        ..Default::default()
    }
}

/// The wall-clock time `d` from now, as the protocol carries it.
pub fn from_now(d: Duration) -> Timestamp {
    let at = chrono::Utc::now() + d;
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub fn reason(response: &pb::VerifyResponse) -> pb::Reason {
    pb::Reason::try_from(response.reason).unwrap()
}

/// Each admin RPC twice: `try_*` keeps the status for tests about refusals,
/// the plain one unwraps for tests about what happens next.
macro_rules! admin_calls {
    ($($try:ident, $plain:ident, $rpc:ident: $req:ty => $resp:ty;)*) => {$(
        pub async fn $try(&mut self, request: $req) -> Result<$resp, Status> {
            self.grpc
                .$rpc(with_key(request, &self.admin))
                .await
                .map(Response::into_inner)
        }

        pub async fn $plain(&mut self, request: $req) -> $resp {
            self.$try(request).await.unwrap()
        }
    )*};
}

impl Api {
    pub async fn connect(url: String, admin: impl Into<String>) -> Self {
        let grpc = KeyServiceClient::connect(url.clone()).await.unwrap();
        Self {
            url,
            grpc,
            admin: admin.into(),
        }
    }

    /// A client over a channel the test built itself (TLS, say); `url` is
    /// where the same server answers Check.
    pub fn over(url: String, channel: Channel, admin: impl Into<String>) -> Self {
        Self {
            url,
            grpc: KeyServiceClient::new(channel),
            admin: admin.into(),
        }
    }

    /// The same connection, its admin calls carrying `admin` instead.
    pub fn as_admin(&self, admin: &str) -> Self {
        Self {
            admin: admin.to_owned(),
            ..self.clone()
        }
    }

    admin_calls! {
        try_issue, issue, issue: pb::IssueRequest => pb::IssueResponse;
        try_revoke, revoke, revoke: pb::RevokeRequest => pb::RevokeResponse;
        try_rotate, rotate, rotate: pb::RotateRequest => pb::RotateResponse;
        try_get, get, get_key: pb::GetKeyRequest => pb::GetKeyResponse;
        try_list, list, list_keys: pb::ListKeysRequest => pb::ListKeysResponse;
        try_update, update, update_key: pb::UpdateKeyRequest => pb::UpdateKeyResponse;
        try_audit, audit, list_audit_events: pb::ListAuditEventsRequest => pb::ListAuditEventsResponse;
        try_usage, usage, get_usage: pb::GetUsageRequest => pb::GetUsageResponse;
        try_report_leak, report_leak, report_leak: pb::ReportLeakRequest => pb::ReportLeakResponse;
    }

    /// Issues a key with only a project, label and scopes: (secret, id).
    pub async fn issue_key(
        &mut self,
        project: &str,
        label: &str,
        names: &[&str],
    ) -> (String, String) {
        let issued = self.issue(issue_request(project, label, names)).await;
        (issued.key, issued.info.unwrap().id)
    }

    /// Issues an `acme` key that expires `expires_in` from now, if given:
    /// (secret, id).
    pub async fn issue_expiring(
        &mut self,
        label: &str,
        names: &[&str],
        expires_in: Option<Duration>,
    ) -> (String, String) {
        let request = pb::IssueRequest {
            expires_at: expires_in.map(from_now),
            ..issue_request("acme", label, names)
        };
        let issued = self.issue(request).await;
        (issued.key, issued.info.unwrap().id)
    }

    /// Revokes `id` with `reason`, returning the key as it is now.
    pub async fn revoke_id(&mut self, id: &str, reason: &str) -> pb::KeyInfo {
        let request = pb::RevokeRequest {
            key_id: id.into(),
            reason: reason.into(),
        };
        self.revoke(request).await.info.unwrap()
    }

    /// A key's public information as GetKey reports it.
    pub async fn get_id(&mut self, id: &str) -> pb::KeyInfo {
        let request = pb::GetKeyRequest { key_id: id.into() };
        self.get(request).await.info.unwrap()
    }

    /// Verify carries no admin key: the presented key is the credential.
    pub async fn try_verify(
        &mut self,
        request: pb::VerifyRequest,
    ) -> Result<pb::VerifyResponse, Status> {
        self.grpc.verify(request).await.map(Response::into_inner)
    }

    pub async fn verify(&mut self, key: &str, names: &[&str]) -> pb::VerifyResponse {
        self.verify_from(key, names, "").await
    }

    /// Verify as a caller at `client_ip` would be.
    pub async fn verify_from(
        &mut self,
        key: &str,
        names: &[&str],
        client_ip: &str,
    ) -> pb::VerifyResponse {
        let request = pb::VerifyRequest {
            key: key.into(),
            required_scopes: scopes(names),
            client_ip: client_ip.into(),
        };
        self.try_verify(request).await.unwrap()
    }

    /// An ext_authz client on the same server, for Check.
    pub async fn authz(&self) -> AuthorizationClient<Channel> {
        AuthorizationClient::connect(self.url.clone())
            .await
            .unwrap()
    }
}

/// A request carrying `authorization: Bearer <key>`.
pub fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}
