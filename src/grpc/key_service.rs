//! `keyward.v1.KeyService`: wire requests in, validated inputs to
//! [`Admin`] and [`Verifier`], wire responses out. Verify is observed as a
//! decision; every other RPC as an admin action.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use chrono::Utc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{admin_auth, convert, report_leak, usage};
use crate::{
    admin::{Actor, Admin, DEFAULT_GRACE, IssueInput, ListInput, MAX_GRACE},
    error::Error,
    proto::v1::{self as pb, key_service_server::KeyService},
    store::{AuditAction, AuditQuery, KeyChanges},
    telemetry::{admin::AdminObserved, decision::Observed, metrics::Rpc, otel},
    validate,
    verify::Verifier,
};

pub struct KeyServiceImpl {
    verifier: Verifier,
    admin: Arc<Admin>,
}

fn sorted(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

impl KeyServiceImpl {
    pub fn new(verifier: Verifier, admin: Arc<Admin>) -> Self {
        Self { verifier, admin }
    }

    /// Authenticates the admin, runs `handler` inside the action's span, and
    /// records the outcome.
    async fn admin_call<Req, Resp>(
        &self,
        action: &'static str,
        method: &'static str,
        request: Request<Req>,
        handler: impl AsyncFnOnce(Actor, Req, &AdminObserved) -> Result<Resp, Status>,
    ) -> Result<Response<Resp>, Status> {
        let observed = AdminObserved::start(action, method, request.metadata());
        let span = observed.span().clone();
        let result = async {
            let actor = admin_auth::authenticate(&self.verifier, &request).await?;
            observed.actor(actor.key_id.as_ref().map(|id| id.as_str()));
            handler(actor, request.into_inner(), &observed)
                .await
                .map(Response::new)
        }
        .instrument(span)
        .await;
        observed.finish(&result);
        result
    }

    async fn issue_key(
        &self,
        actor: Actor,
        req: pb::IssueRequest,
        observed: &AdminObserved,
    ) -> Result<pb::IssueResponse, Status> {
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
            rate_limit: req
                .rate_limit
                .as_ref()
                .map(|l| convert::rate_limit("rate_limit", l))
                .transpose()?,
            quota: req
                .quota
                .as_ref()
                .map(|q| convert::quota("quota", q))
                .transpose()?,
            allowed_cidrs: validate::cidrs("allowed_cidrs", &req.allowed_cidrs)?,
        };
        let (secret, key) = self.admin.issue(&actor, input).await?;
        observed.target(key.id.as_str(), &key.project);
        tracing::info!(key_id = %key.id, project = %key.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), "key issued");
        Ok(pb::IssueResponse {
            key: secret.into_exposed(),
            info: Some(convert::key_info(&key, Utc::now())),
        })
    }

    async fn revoke_key(
        &self,
        actor: Actor,
        req: pb::RevokeRequest,
        observed: &AdminObserved,
    ) -> Result<pb::RevokeResponse, Status> {
        let id = validate::key_id("key_id", &req.key_id)?;
        validate::reason("reason", &req.reason)?;
        let key = self.admin.revoke(&actor, &id, &req.reason).await?;
        observed.target(key.id.as_str(), &key.project);
        tracing::info!(key_id = %key.id, project = %key.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), "key revoked");
        Ok(pb::RevokeResponse {
            info: Some(convert::key_info(&key, Utc::now())),
        })
    }

    async fn rotate_key(
        &self,
        actor: Actor,
        req: pb::RotateRequest,
        observed: &AdminObserved,
    ) -> Result<pb::RotateResponse, Status> {
        let id = validate::key_id("key_id", &req.key_id)?;
        let grace = match &req.grace_period {
            None => DEFAULT_GRACE,
            Some(d) => convert::from_duration("grace_period", d)?,
        };
        if grace > MAX_GRACE {
            return Err(Error::invalid("grace_period", "longer than 30 days").into());
        }
        let (secret, new, old) = self.admin.rotate(&actor, &id, grace).await?;
        observed.target(old.id.as_str(), &old.project);
        tracing::info!(key_id = %old.id, new_key_id = %new.id, project = %new.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), "key rotated");
        let now = Utc::now();
        Ok(pb::RotateResponse {
            key: secret.into_exposed(),
            info: Some(convert::key_info(&new, now)),
            previous: Some(convert::key_info(&old, now)),
        })
    }

    async fn get(
        &self,
        actor: Actor,
        req: pb::GetKeyRequest,
        observed: &AdminObserved,
    ) -> Result<pb::GetKeyResponse, Status> {
        let id = validate::key_id("key_id", &req.key_id)?;
        let key = self.admin.get(&actor, &id).await?;
        observed.target(key.id.as_str(), &key.project);
        Ok(pb::GetKeyResponse {
            info: Some(convert::key_info(&key, Utc::now())),
        })
    }

    async fn list(
        &self,
        actor: Actor,
        req: pb::ListKeysRequest,
        _: &AdminObserved,
    ) -> Result<pb::ListKeysResponse, Status> {
        if !req.project.is_empty() {
            validate::name("project", &req.project)?;
        }
        if !req.label.is_empty() {
            validate::name("label", &req.label)?;
        }
        let input = ListInput {
            project: Some(req.project).filter(|p| !p.is_empty()),
            status: convert::status_filter("status", req.status)?,
            label: Some(req.label).filter(|l| !l.is_empty()),
            page_size: page_size(req.page_size)?,
            after: convert::key_page_cursor("page_token", &req.page_token)?,
        };
        let page = self.admin.list(&actor, input).await?;
        let now = Utc::now();
        Ok(pb::ListKeysResponse {
            keys: page
                .keys
                .iter()
                .map(|k| convert::key_info(k, now))
                .collect(),
            next_page_token: page
                .next
                .map(|id| convert::page_token(id.as_str()))
                .unwrap_or_default(),
        })
    }

    async fn update(
        &self,
        actor: Actor,
        req: pb::UpdateKeyRequest,
        observed: &AdminObserved,
    ) -> Result<pb::UpdateKeyResponse, Status> {
        let id = validate::key_id("key_id", &req.key_id)?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "must name at least one of label, scopes, expires_at, metadata, rate_limit, quota, allowed_cidrs",
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
                "rate_limit" => {
                    changes.rate_limit = Some(
                        req.rate_limit
                            .as_ref()
                            .map(|l| convert::rate_limit("rate_limit", l))
                            .transpose()?,
                    )
                }
                "quota" => {
                    changes.quota = Some(
                        req.quota
                            .as_ref()
                            .map(|q| convert::quota("quota", q))
                            .transpose()?,
                    )
                }
                "allowed_cidrs" => {
                    changes.allowed_cidrs =
                        Some(validate::cidrs("allowed_cidrs", &req.allowed_cidrs)?)
                }
                other => {
                    return Err(Error::invalid(
                        "update_mask",
                        format!(
                            "unknown field {other:?}; use label, scopes, expires_at, metadata, \
                             rate_limit, quota or allowed_cidrs"
                        ),
                    )
                    .into());
                }
            }
        }
        let key = self.admin.update(&actor, &id, changes).await?;
        observed.target(key.id.as_str(), &key.project);
        tracing::info!(key_id = %key.id, project = %key.project, actor = actor.key_id.as_ref().map(|id| id.as_str()), fields = ?paths, "key updated");
        Ok(pb::UpdateKeyResponse {
            info: Some(convert::key_info(&key, Utc::now())),
        })
    }

    async fn audit(
        &self,
        actor: Actor,
        req: pb::ListAuditEventsRequest,
        _: &AdminObserved,
    ) -> Result<pb::ListAuditEventsResponse, Status> {
        let mut query = AuditQuery {
            limit: page_size(req.page_size)?,
            ..Default::default()
        };
        if !req.key_id.is_empty() {
            query.target = Some(validate::key_id("key_id", &req.key_id)?);
        }
        if !req.project.is_empty() {
            validate::name("project", &req.project)?;
            query.project = Some(req.project);
        }
        if !req.action.is_empty() {
            query.action = Some(AuditAction::parse(&req.action).ok_or_else(|| {
                Error::invalid(
                    "action",
                    "one of bootstrap, issue, revoke, rotate, update, revoke_leaked",
                )
            })?);
        }
        query.since = req
            .since
            .as_ref()
            .map(|t| convert::from_timestamp("since", t))
            .transpose()?;
        query.until = req
            .until
            .as_ref()
            .map(|t| convert::from_timestamp("until", t))
            .transpose()?;
        query.before = convert::parse_page_token("page_token", &req.page_token)?
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| Error::invalid("page_token", "not a token this server issued"))
            })
            .transpose()?;
        let (events, next) = self.admin.audit(&actor, query).await?;
        Ok(pb::ListAuditEventsResponse {
            events: events
                .into_iter()
                .map(|e| pb::AuditEvent {
                    id: e.id,
                    at: Some(convert::timestamp(e.at)),
                    actor_key_id: e.actor.unwrap_or_default(),
                    action: e.action,
                    project: e.project,
                    key_id: e.target,
                    source: e.source,
                    details_json: e.details.to_string(),
                })
                .collect(),
            next_page_token: next
                .map(|id| convert::page_token(&id.to_string()))
                .unwrap_or_default(),
        })
    }

    async fn usage(
        &self,
        actor: Actor,
        req: pb::GetUsageRequest,
        observed: &AdminObserved,
    ) -> Result<pb::GetUsageResponse, Status> {
        let request = usage::request(&req)?;
        observed.target(&req.key_id, &req.project);
        let report = self.admin.usage(&actor, request).await?;
        Ok(usage::response(report))
    }
}

fn page_size(requested: i32) -> Result<u32, Error> {
    u32::try_from(requested).map_err(|_| Error::invalid("page_size", "must not be negative"))
}

#[tonic::async_trait]
impl KeyService for KeyServiceImpl {
    async fn issue(
        &self,
        request: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::IssueResponse>, Status> {
        self.admin_call("issue", "Issue", request, async |a, r, o| {
            self.issue_key(a, r, o).await
        })
        .await
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        validate::key_length("key", &req.key)?;
        validate::required_scopes("required_scopes", &req.required_scopes)?;
        let client_ip = match req.client_ip.as_str() {
            "" => None,
            ip => Some(
                ip.parse::<IpAddr>()
                    .map_err(|_| Error::invalid("client_ip", "not an IPv4 or IPv6 address"))?,
            ),
        };
        let observed = Observed::start(Rpc::Verify, || otel::from_metadata(&metadata));
        let outcome = self
            .verifier
            .verify(&req.key, &req.required_scopes, client_ip)
            .await;
        observed.finish(&outcome, &req.required_scopes, false);
        let verdict = outcome.map_err(Error::from)?;
        Ok(Response::new(convert::verify_response(&verdict)))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        self.admin_call("revoke", "Revoke", request, async |a, r, o| {
            self.revoke_key(a, r, o).await
        })
        .await
    }

    async fn rotate(
        &self,
        request: Request<pb::RotateRequest>,
    ) -> Result<Response<pb::RotateResponse>, Status> {
        self.admin_call("rotate", "Rotate", request, async |a, r, o| {
            self.rotate_key(a, r, o).await
        })
        .await
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GetKeyResponse>, Status> {
        self.admin_call("get", "GetKey", request, async |a, r, o| {
            self.get(a, r, o).await
        })
        .await
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        self.admin_call("list", "ListKeys", request, async |a, r, o| {
            self.list(a, r, o).await
        })
        .await
    }

    async fn update_key(
        &self,
        request: Request<pb::UpdateKeyRequest>,
    ) -> Result<Response<pb::UpdateKeyResponse>, Status> {
        self.admin_call("update", "UpdateKey", request, async |a, r, o| {
            self.update(a, r, o).await
        })
        .await
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        self.admin_call("audit", "ListAuditEvents", request, async |a, r, o| {
            self.audit(a, r, o).await
        })
        .await
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        self.admin_call("usage", "GetUsage", request, async |a, r, o| {
            self.usage(a, r, o).await
        })
        .await
    }

    async fn report_leak(
        &self,
        request: Request<pb::ReportLeakRequest>,
    ) -> Result<Response<pb::ReportLeakResponse>, Status> {
        self.admin_call("report_leak", "ReportLeak", request, async |a, r, _| {
            report_leak::report(&self.admin, &a, r).await
        })
        .await
    }
}
