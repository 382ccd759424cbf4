//! Calls into the KeyService implementation, in-process, as the session's
//! admin: the same admin auth, reach checks, validation and audit as over
//! gRPC, with the browser's connection info so the audit source (and any
//! address restriction on the admin key) is the browser's address.

use std::sync::Arc;

use tonic::{Request, metadata::MetadataMap};

use super::{error::ConsoleError, session::AdminKey};
use crate::{
    admin::{Actor, Reach},
    grpc::{admin_auth, key_service::KeyServiceImpl},
    proto::v1::{self as pb, key_service_server::KeyService},
    verify::Verifier,
};

pub struct Rpc {
    service: Arc<KeyServiceImpl>,
    verifier: Verifier,
}

impl Rpc {
    pub fn new(service: Arc<KeyServiceImpl>, verifier: Verifier) -> Self {
        Self { service, verifier }
    }

    /// The admin behind `key`, checked by the admin auth path; with
    /// `extensions` of the browser's request.
    pub async fn caller(
        &self,
        key: AdminKey,
        extensions: http::Extensions,
    ) -> Result<Caller, ConsoleError> {
        let caller = Caller {
            service: self.service.clone(),
            key,
            extensions,
            reach: Reach::AllProjects,
        };
        let actor: Actor = admin_auth::authenticate(&self.verifier, &caller.request(()))
            .await
            .map_err(tonic::Status::from)?;
        Ok(Caller {
            reach: actor.reach,
            ..caller
        })
    }
}

/// One signed-in admin, for the calls of one page.
pub struct Caller {
    service: Arc<KeyServiceImpl>,
    key: AdminKey,
    extensions: http::Extensions,
    reach: Reach,
}

impl Caller {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut metadata = MetadataMap::new();
        let mut bearer = format!("Bearer {}", self.key.expose())
            .parse::<tonic::metadata::MetadataValue<_>>()
            .unwrap_or_else(|_| tonic::metadata::MetadataValue::from_static(""));
        bearer.set_sensitive(true);
        metadata.insert("authorization", bearer);
        Request::from_parts(metadata, self.extensions.clone(), message)
    }

    /// The one project a project admin reaches; `None` for an all-projects
    /// admin.
    pub fn own_project(&self) -> Option<&str> {
        match &self.reach {
            Reach::AllProjects => None,
            Reach::Project(project) => Some(project),
        }
    }

    pub async fn issue(&self, r: pb::IssueRequest) -> Result<pb::IssueResponse, ConsoleError> {
        Ok(self.service.issue(self.request(r)).await?.into_inner())
    }

    pub async fn revoke(&self, r: pb::RevokeRequest) -> Result<pb::RevokeResponse, ConsoleError> {
        Ok(self.service.revoke(self.request(r)).await?.into_inner())
    }

    pub async fn rotate(&self, r: pb::RotateRequest) -> Result<pb::RotateResponse, ConsoleError> {
        Ok(self.service.rotate(self.request(r)).await?.into_inner())
    }

    pub async fn get_key(&self, key_id: &str) -> Result<pb::KeyInfo, ConsoleError> {
        let r = pb::GetKeyRequest {
            key_id: key_id.to_owned(),
        };
        let reply = self.service.get_key(self.request(r)).await?.into_inner();
        reply.info.ok_or(ConsoleError::NotFound)
    }

    pub async fn list_keys(
        &self,
        r: pb::ListKeysRequest,
    ) -> Result<pb::ListKeysResponse, ConsoleError> {
        Ok(self.service.list_keys(self.request(r)).await?.into_inner())
    }

    pub async fn update_key(
        &self,
        r: pb::UpdateKeyRequest,
    ) -> Result<pb::UpdateKeyResponse, ConsoleError> {
        Ok(self.service.update_key(self.request(r)).await?.into_inner())
    }

    pub async fn audit(
        &self,
        r: pb::ListAuditEventsRequest,
    ) -> Result<pb::ListAuditEventsResponse, ConsoleError> {
        Ok(self
            .service
            .list_audit_events(self.request(r))
            .await?
            .into_inner())
    }

    pub async fn usage(
        &self,
        r: pb::GetUsageRequest,
    ) -> Result<pb::GetUsageResponse, ConsoleError> {
        Ok(self.service.get_usage(self.request(r)).await?.into_inner())
    }
}
