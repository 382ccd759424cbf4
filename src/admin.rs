//! Admin operations: issue, revoke, rotate, update, get, list.
//!
//! Each write goes to the store first (with its audit event, in one
//! transaction), then the key's digest is invalidated in the caches, so a
//! write that did not commit never changes what Verify answers.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use serde_json::json;

use crate::{
    cache::KeyLookup,
    error::Error,
    key::{KeyId, SecretKey, format},
    limit::{Quota, RateLimit},
    scope,
    store::{
        self, AuditAction, AuditQuery, KeyChanges, KeyStore, ListQuery, NewKey, StoredAudit,
        StoredKey,
    },
    validate,
};

mod actor;
mod leak;

pub use crate::store::KeyStatus;
use actor::not_found;
pub use actor::{Actor, Reach};
pub use leak::{LeakLabel, LeakedToken, MAX_LEAKED_TOKENS};

/// The project whose admin keys reach every project.
pub const ADMIN_PROJECT: &str = "keyward";
/// Rotation grace when the request names none.
pub const DEFAULT_GRACE: Duration = Duration::hours(24);
pub const MAX_GRACE: Duration = Duration::days(30);
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// A validated Issue request.
#[derive(Debug, Clone)]
pub struct IssueInput {
    pub project: String,
    pub label: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit: Option<RateLimit>,
    pub quota: Option<Quota>,
    pub allowed_cidrs: Vec<IpNet>,
}

/// A validated ListKeys request.
#[derive(Debug, Clone, Default)]
pub struct ListInput {
    pub project: Option<String>,
    pub status: Option<KeyStatus>,
    pub label: Option<String>,
    pub page_size: u32,
    /// Resume after this key (from the page token).
    pub after: Option<KeyId>,
}

pub struct Page {
    pub keys: Vec<StoredKey>,
    /// The last key of this page when another page follows.
    pub next: Option<KeyId>,
}

pub struct Admin {
    store: Arc<dyn KeyStore>,
    lookup: Arc<KeyLookup>,
}

impl Admin {
    pub fn new(store: Arc<dyn KeyStore>, lookup: Arc<KeyLookup>) -> Self {
        Self { store, lookup }
    }

    pub async fn issue(
        &self,
        actor: &Actor,
        input: IssueInput,
    ) -> Result<(SecretKey, StoredKey), Error> {
        actor.check_reach(&input.project)?;
        actor.check_grant(&input.scopes)?;
        let now = store::precision::now();
        if let Some(at) = input.expires_at {
            validate::future_time("expires_at", at, now)?;
        }
        let (secret, new) = new_key(input, now, KeyId::generate(), None);
        let details = json!({
            "label": new.label,
            "scopes": new.scopes,
            "expires_at": new.expires_at,
            "rate_limit": new.rate_limit,
            "quota": new.quota,
            "allowed_cidrs": new.allowed_cidrs,
        });
        let stored_view = new.to_stored();
        let event = actor.event(AuditAction::Issue, &stored_view, now, details);
        let stored = self.store.insert(&new, &event).await?;
        self.lookup
            .invalidate_created(&stored.digest, now.timestamp_micros())
            .await;
        Ok((secret, stored))
    }

    pub async fn get(&self, actor: &Actor, id: &KeyId) -> Result<StoredKey, Error> {
        let key = self.store.get(id).await?.ok_or_else(|| not_found(id))?;
        actor.check_key(&key)?;
        Ok(key)
    }

    pub async fn revoke(
        &self,
        actor: &Actor,
        id: &KeyId,
        reason: &str,
    ) -> Result<StoredKey, Error> {
        let now = store::precision::now();
        let by = actor.write_by(AuditAction::Revoke, now, json!({ "reason": reason }));
        self.revoke_by(id, now, reason, &by).await
    }

    /// The one revoke path (Revoke and leak reports): the store write with
    /// its audit event and outbox row, then the eviction.
    async fn revoke_by(
        &self,
        id: &KeyId,
        now: DateTime<Utc>,
        reason: &str,
        by: &crate::store::WriteBy,
    ) -> Result<StoredKey, Error> {
        let revoked = self.store.revoke(id, now, reason, by).await?;
        self.lookup
            .invalidate(&revoked.digest, now.timestamp_micros())
            .await;
        Ok(revoked)
    }

    /// Replaces a key; the old one works for `grace` more (zero: not at all).
    /// The successor is built from the row the rotation locked, so a
    /// concurrent UpdateKey is either in it or refused, never undone.
    pub async fn rotate(
        &self,
        actor: &Actor,
        id: &KeyId,
        grace: Duration,
    ) -> Result<(SecretKey, StoredKey, StoredKey), Error> {
        let now = store::precision::now();
        let new_id = KeyId::generate();
        let details =
            json!({ "new_key_id": new_id.as_str(), "grace_seconds": grace.num_seconds() });
        let by = actor.write_by(AuditAction::Rotate, now, details);
        let mut secret = None;
        let mut successor = |old: &StoredKey| {
            let input = IssueInput {
                project: old.project.clone(),
                label: old.label.clone(),
                scopes: old.scopes.clone(),
                // A key that had a lifetime gets the same lifetime again.
                expires_at: old
                    .expires_at
                    .map(|at| validate::later_by(now, at - old.created_at)),
                metadata: old.metadata.clone(),
                rate_limit: old.rate_limit,
                quota: old.quota,
                allowed_cidrs: old.allowed_cidrs.clone(),
            };
            let (key, new) = new_key(input, now, new_id.clone(), Some(old.id.clone()));
            secret = Some(key);
            new
        };
        let until = validate::later_by(now, grace);
        let rotated = self
            .store
            .rotate(id, now, until, &mut successor, &by)
            .await?;
        let secret = secret
            .ok_or_else(|| Error::Internal("a rotation committed without a successor".into()))?;
        self.lookup
            .invalidate(&rotated.old.digest, now.timestamp_micros())
            .await;
        self.lookup
            .invalidate_created(&rotated.new.digest, now.timestamp_micros())
            .await;
        Ok((secret, rotated.new, rotated.old))
    }

    pub async fn update(
        &self,
        actor: &Actor,
        id: &KeyId,
        changes: KeyChanges,
    ) -> Result<StoredKey, Error> {
        let now = store::precision::now();
        let mut fields = Vec::new();
        if changes.label.is_some() {
            fields.push("label");
        }
        if let Some(scopes) = &changes.scopes {
            actor.check_grant(scopes)?;
            fields.push("scopes");
        }
        if let Some(expires_at) = changes.expires_at {
            if let Some(at) = expires_at {
                validate::future_time("expires_at", at, now)?;
            }
            fields.push("expires_at");
        }
        if changes.metadata.is_some() {
            fields.push("metadata");
        }
        if changes.rate_limit.is_some() {
            fields.push("rate_limit");
        }
        if changes.quota.is_some() {
            fields.push("quota");
        }
        if changes.allowed_cidrs.is_some() {
            fields.push("allowed_cidrs");
        }
        let by = actor.write_by(AuditAction::Update, now, json!({ "fields": fields }));
        let updated = self.store.update(id, &changes, now, &by).await?;
        self.lookup
            .invalidate(&updated.digest, now.timestamp_micros())
            .await;
        Ok(updated)
    }

    pub async fn list(&self, actor: &Actor, input: ListInput) -> Result<Page, Error> {
        let project = match (&actor.reach, input.project) {
            (Reach::Project(own), None) => Some(own.to_string()),
            (_, Some(project)) => {
                actor.check_reach(&project)?;
                Some(project)
            }
            (Reach::AllProjects, None) => None,
        };
        let limit = page_size(input.page_size);
        let query = ListQuery {
            project,
            status: input.status,
            label: input.label,
            before: input.after,
            limit: limit + 1,
            now: store::precision::now(),
        };
        let mut keys = self.store.list(&query).await?;
        let next = if keys.len() > limit as usize {
            keys.truncate(limit as usize);
            keys.last().map(|k| k.id.clone())
        } else {
            None
        };
        Ok(Page { keys, next })
    }

    /// Audit events, newest first; project admins see their project only.
    pub async fn audit(
        &self,
        actor: &Actor,
        mut query: AuditQuery,
    ) -> Result<(Vec<StoredAudit>, Option<i64>), Error> {
        match (&actor.reach, &query.project) {
            (Reach::Project(own), None) => query.project = Some(own.to_string()),
            (_, Some(project)) => actor.check_reach(project)?,
            (Reach::AllProjects, None) => {}
        }
        let limit = page_size(query.limit);
        query.limit = limit + 1;
        let mut events = self.store.list_audit(&query).await?;
        let next = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok((events, next))
    }

    /// A key's or a project's usage; see [`crate::usage::report`].
    pub async fn usage(
        &self,
        actor: &Actor,
        request: crate::usage::report::UsageRequest,
    ) -> Result<crate::usage::report::Report, Error> {
        crate::usage::report::report(&*self.store, actor, request).await
    }

    /// Writes an all-projects admin key straight to the store, for the first
    /// admin of a new deployment.
    pub async fn bootstrap(&self, label: String) -> Result<(SecretKey, StoredKey), Error> {
        let actor = Actor {
            key_id: None,
            reach: Reach::AllProjects,
            source: "cli".to_owned(),
        };
        let now = store::precision::now();
        let input = IssueInput {
            project: ADMIN_PROJECT.to_owned(),
            label,
            scopes: vec![scope::ADMIN.to_owned()],
            expires_at: None,
            metadata: BTreeMap::from([(
                "created_by".to_owned(),
                "keyward admin bootstrap".to_owned(),
            )]),
            rate_limit: None,
            quota: None,
            allowed_cidrs: Vec::new(),
        };
        let (secret, new) = new_key(input, now, KeyId::generate(), None);
        let event = actor.event(
            AuditAction::Bootstrap,
            &new.to_stored(),
            now,
            json!({ "label": new.label }),
        );
        let stored = self.store.insert(&new, &event).await?;
        self.lookup
            .invalidate_created(&stored.digest, now.timestamp_micros())
            .await;
        Ok((secret, stored))
    }
}

fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

fn new_key(
    input: IssueInput,
    now: DateTime<Utc>,
    id: KeyId,
    replaces: Option<KeyId>,
) -> (SecretKey, NewKey) {
    let secret = format::generate(&format::prefix_for_project(&input.project));
    let parsed = format::parse(secret.expose()).expect("generated keys parse");
    let new = NewKey {
        id,
        project: input.project,
        label: input.label,
        digest: crate::key::Digest::of(parsed),
        hint: format::hint(&secret),
        scopes: input.scopes,
        metadata: input.metadata,
        created_at: now,
        expires_at: input.expires_at,
        replaces,
        rate_limit: input.rate_limit,
        quota: input.quota,
        allowed_cidrs: input.allowed_cidrs,
    };
    (secret, new)
}
