//! `keyward.v1.KeyService`: wire requests in, validated inputs to
//! [`Admin`] and [`Verifier`], wire responses out.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::{admin_auth, convert};
use crate::{
    admin::{Actor, Admin, DEFAULT_GRACE, IssueInput, ListInput, MAX_GRACE},
    error::Error,
    proto::v1::{self as pb, key_service_server::KeyService},
    store::KeyChanges,
    validate,
    verify::Verifier,
};

pub struct KeyServiceImpl {
    verifier: Verifier,
    admin: Arc<Admin>,
}

impl KeyServiceImpl {
    pub fn new(verifier: Verifier, admin: Arc<Admin>) -> Self {
        Self { verifier, admin }
    }

    async fn actor<T>(&self, request: &Request<T>) -> Result<Actor, Error> {
        admin_auth::authenticate(&self.verifier, request).await
    }
}

fn sorted(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

#[tonic::async_trait]
impl KeyService for KeyServiceImpl {
    async fn issue(
        &self,
        request: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::IssueResponse>, Status> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        validate::name("project", &req.project)?;
        validate::name("label", &req.label)?;
        let scopes = validate::granted_scopes("scopes", req.scopes)?;
        let metadata = sorted(req.metadata);
        validate::metadata("metadata", &metadata)?;
        let expires_at = req
            .expires_at
            .map(|t| convert::from_timestamp("expires_at", &t))
            .transpose()?;
        let input = IssueInput {
            project: req.project,
            label: req.label,
            scopes,
            expires_at,
            metadata,
        };
        let (secret, key) = self.admin.issue(&actor, input).await?;
        tracing::info!(key_id = %key.id, project = %key.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), "key issued");
        Ok(Response::new(pb::IssueResponse {
            key: secret.into_exposed(),
            info: Some(convert::key_info(&key, Utc::now())),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let req = request.into_inner();
        validate::key_length("key", &req.key)?;
        validate::required_scopes("required_scopes", &req.required_scopes)?;
        if !req.client_ip.is_empty() && req.client_ip.parse::<IpAddr>().is_err() {
            return Err(Error::invalid("client_ip", "not an IPv4 or IPv6 address").into());
        }
        let verdict = self
            .verifier
            .verify(&req.key, &req.required_scopes)
            .await
            .map_err(Error::from)?;
        tracing::debug!(
            key_id = verdict.record.as_ref().map(|r| r.id.as_str()),
            decision = if verdict.allowed() { "allow" } else { "deny" },
            reason = verdict.reason.as_str(),
            "verify"
        );
        Ok(Response::new(convert::verify_response(&verdict)))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        let id = validate::key_id("key_id", &req.key_id)?;
        validate::reason("reason", &req.reason)?;
        let key = self.admin.revoke(&actor, &id, &req.reason).await?;
        tracing::info!(key_id = %key.id, project = %key.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), "key revoked");
        Ok(Response::new(pb::RevokeResponse {
            info: Some(convert::key_info(&key, Utc::now())),
        }))
    }

    async fn rotate(
        &self,
        request: Request<pb::RotateRequest>,
    ) -> Result<Response<pb::RotateResponse>, Status> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        let id = validate::key_id("key_id", &req.key_id)?;
        let grace = match &req.grace_period {
            None => DEFAULT_GRACE,
            Some(d) => convert::from_duration("grace_period", d)?,
        };
        if grace > MAX_GRACE {
            return Err(Error::invalid("grace_period", "longer than 30 days").into());
        }
        let (secret, new, old) = self.admin.rotate(&actor, &id, grace).await?;
        tracing::info!(key_id = %old.id, new_key_id = %new.id, project = %new.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), "key rotated");
        let now = Utc::now();
        Ok(Response::new(pb::RotateResponse {
            key: secret.into_exposed(),
            info: Some(convert::key_info(&new, now)),
            previous: Some(convert::key_info(&old, now)),
        }))
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GetKeyResponse>, Status> {
        let actor = self.actor(&request).await?;
        let id = validate::key_id("key_id", &request.get_ref().key_id)?;
        let key = self.admin.get(&actor, &id).await?;
        Ok(Response::new(pb::GetKeyResponse {
            info: Some(convert::key_info(&key, Utc::now())),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        if !req.project.is_empty() {
            validate::name("project", &req.project)?;
        }
        if !req.label.is_empty() {
            validate::name("label", &req.label)?;
        }
        let page_size = u32::try_from(req.page_size)
            .map_err(|_| Error::invalid("page_size", "must not be negative"))?;
        let input = ListInput {
            project: Some(req.project).filter(|p| !p.is_empty()),
            status: convert::status_filter("status", req.status)?,
            label: Some(req.label).filter(|l| !l.is_empty()),
            page_size,
            after: convert::key_page_cursor("page_token", &req.page_token)?,
        };
        let page = self.admin.list(&actor, input).await?;
        let now = Utc::now();
        Ok(Response::new(pb::ListKeysResponse {
            keys: page
                .keys
                .iter()
                .map(|k| convert::key_info(k, now))
                .collect(),
            next_page_token: page
                .next
                .map(|id| convert::page_token(id.as_str()))
                .unwrap_or_default(),
        }))
    }

    async fn update_key(
        &self,
        request: Request<pb::UpdateKeyRequest>,
    ) -> Result<Response<pb::UpdateKeyResponse>, Status> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        let id = validate::key_id("key_id", &req.key_id)?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "must name at least one of label, scopes, expires_at, metadata",
            )
            .into());
        }
        let mut changes = KeyChanges::default();
        for path in &paths {
            match path.as_str() {
                "label" => {
                    validate::name("label", &req.label)?;
                    changes.label = Some(req.label.clone());
                }
                "scopes" => {
                    changes.scopes = Some(validate::granted_scopes("scopes", req.scopes.clone())?)
                }
                "expires_at" => {
                    changes.expires_at = Some(
                        req.expires_at
                            .as_ref()
                            .map(|t| convert::from_timestamp("expires_at", t))
                            .transpose()?,
                    )
                }
                "metadata" => {
                    let metadata = sorted(req.metadata.clone());
                    validate::metadata("metadata", &metadata)?;
                    changes.metadata = Some(metadata);
                }
                other => {
                    return Err(Error::invalid(
                        "update_mask",
                        format!(
                            "unknown field {other:?}; use label, scopes, expires_at or metadata"
                        ),
                    )
                    .into());
                }
            }
        }
        let key = self.admin.update(&actor, &id, changes).await?;
        tracing::info!(key_id = %key.id, project = %key.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), fields = ?paths, "key updated");
        Ok(Response::new(pb::UpdateKeyResponse {
            info: Some(convert::key_info(&key, Utc::now())),
        }))
    }
}
