//! The rows the stores read and write, independent of the engine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::{
    key::{Digest, KeyId},
    limit::{Limits, Quota, RateLimit},
    record::KeyRecord,
};

/// A key as the store holds it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: KeyId,
    pub project: String,
    pub label: String,
    /// Needed to evict the key from the caches; never shown to clients.
    pub digest: Digest,
    pub hint: String,
    pub scopes: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub replaced_by: Option<KeyId>,
    pub replaces: Option<KeyId>,
    pub rate_limit: Option<RateLimit>,
    pub quota: Option<Quota>,
    pub allowed_cidrs: Vec<IpNet>,
    /// The last minute with an allowed call, from the batched usage writes.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl StoredKey {
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        KeyStatus::at(self.expires_at, self.revoked_at, now)
    }

    pub fn to_record(&self) -> KeyRecord {
        KeyRecord {
            id: self.id.clone(),
            project: crate::intern::project(&self.project),
            scopes: crate::intern::scopes(self.scopes.iter().map(String::as_str)),
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            limits: Limits::new(self.rate_limit, self.quota),
            cidrs: self.allowed_cidrs.clone().into_boxed_slice(),
        }
    }
}

/// A key's life-cycle state, derived from its timestamps (see
/// `keyward.v1.KeyStatus`), so no background job has to flip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Rotating,
    Revoked,
    Expired,
}

impl KeyStatus {
    pub fn at(
        expires_at: Option<DateTime<Utc>>,
        revoked_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        match (revoked_at, expires_at) {
            (Some(r), _) if r <= now => KeyStatus::Revoked,
            (_, Some(e)) if e <= now => KeyStatus::Expired,
            (Some(_), _) => KeyStatus::Rotating,
            _ => KeyStatus::Active,
        }
    }

    /// Whether the key holds its label (labels are unique among live keys).
    pub fn holds_label(self) -> bool {
        self == KeyStatus::Active
    }
}

/// A key about to be inserted.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: KeyId,
    pub project: String,
    pub label: String,
    pub digest: Digest,
    pub hint: String,
    pub scopes: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub replaces: Option<KeyId>,
    pub rate_limit: Option<RateLimit>,
    pub quota: Option<Quota>,
    pub allowed_cidrs: Vec<IpNet>,
}

impl NewKey {
    pub fn to_stored(&self) -> StoredKey {
        StoredKey {
            id: self.id.clone(),
            project: self.project.clone(),
            label: self.label.clone(),
            digest: self.digest,
            hint: self.hint.clone(),
            scopes: self.scopes.clone(),
            metadata: self.metadata.clone(),
            created_at: self.created_at,
            updated_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: None,
            revoke_reason: None,
            replaced_by: None,
            replaces: self.replaces.clone(),
            rate_limit: self.rate_limit,
            quota: self.quota,
            allowed_cidrs: self.allowed_cidrs.clone(),
            last_used_at: None,
        }
    }
}

/// Fields UpdateKey changes; `None` leaves a field as it is. For the expiry
/// and the limits, `Some(None)` removes them.
#[derive(Debug, Clone, Default)]
pub struct KeyChanges {
    pub label: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub rate_limit: Option<Option<RateLimit>>,
    pub quota: Option<Option<Quota>>,
    pub allowed_cidrs: Option<Vec<IpNet>>,
}

impl KeyChanges {
    pub fn apply(&self, key: &mut StoredKey, now: DateTime<Utc>) {
        if let Some(label) = &self.label {
            key.label = label.clone();
        }
        if let Some(scopes) = &self.scopes {
            key.scopes = scopes.clone();
        }
        if let Some(expires_at) = self.expires_at {
            key.expires_at = expires_at;
        }
        if let Some(metadata) = &self.metadata {
            key.metadata = metadata.clone();
        }
        if let Some(rate_limit) = self.rate_limit {
            key.rate_limit = rate_limit;
        }
        if let Some(quota) = self.quota {
            key.quota = quota;
        }
        if let Some(cidrs) = &self.allowed_cidrs {
            key.allowed_cidrs = cidrs.clone();
        }
        key.updated_at = now;
    }
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub project: Option<String>,
    pub status: Option<KeyStatus>,
    pub label: Option<String>,
    /// Only ids below this one (the page cursor).
    pub before: Option<KeyId>,
    pub limit: u32,
    /// The instant statuses are evaluated at.
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Bootstrap,
    Issue,
    Revoke,
    Rotate,
    Update,
    /// A revoke on a leak report: its own action, so leaks can be counted
    /// and found apart from deliberate revokes.
    RevokeLeaked,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Bootstrap => "bootstrap",
            AuditAction::Issue => "issue",
            AuditAction::Revoke => "revoke",
            AuditAction::Rotate => "rotate",
            AuditAction::Update => "update",
            AuditAction::RevokeLeaked => "revoke_leaked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Bootstrap,
            Self::Issue,
            Self::Revoke,
            Self::Rotate,
            Self::Update,
            Self::RevokeLeaked,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// One admin action, written in the same transaction as the change.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// The admin key that acted; `None` for `keyward admin bootstrap`.
    pub actor: Option<KeyId>,
    pub action: AuditAction,
    pub project: String,
    pub target: KeyId,
    /// The caller's address, or `cli` for local commands.
    pub source: String,
    /// What changed, as JSON (never a secret or a digest).
    pub details: serde_json::Value,
}

/// An admin write's audit event before the key is locked: the store
/// completes it from the locked row, so the event names the key as it was
/// when it changed.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub at: DateTime<Utc>,
    /// The admin key that acted; `None` for local commands.
    pub actor: Option<KeyId>,
    pub action: AuditAction,
    /// The caller's address, or `cli` for local commands.
    pub source: String,
    /// What the request asked for, as JSON (never a secret or a digest).
    pub details: serde_json::Value,
}

impl AuditDraft {
    pub fn for_key(&self, key: &StoredKey) -> AuditEvent {
        AuditEvent {
            at: self.at,
            actor: self.actor.clone(),
            action: self.action,
            project: key.project.clone(),
            target: key.id.clone(),
            source: self.source.clone(),
            details: self.details.clone(),
        }
    }
}

/// Who makes a write to an existing key. Whether they may is decided on the
/// row the write locked, never on an earlier read, so the key cannot change
/// between the check and the write.
#[derive(Debug, Clone)]
pub struct WriteBy {
    /// Only keys of this project may be written (`None`: any). A key of
    /// another project is `NotFound`, exactly like an unknown id, so the
    /// answer tells nothing about other projects.
    pub project: Option<String>,
    pub audit: AuditDraft,
}

impl WriteBy {
    pub fn may_write(&self, key: &StoredKey) -> bool {
        self.project.as_ref().is_none_or(|p| *p == key.project)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudit {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub action: String,
    pub project: String,
    pub target: String,
    pub source: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub target: Option<KeyId>,
    pub project: Option<String>,
    pub action: Option<AuditAction>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only events with a lower id (the page cursor).
    pub before: Option<i64>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn status_follows_the_timestamps() {
        let now = Utc::now();
        let past = Some(now - Duration::seconds(1));
        let future = Some(now + Duration::seconds(1));
        assert_eq!(KeyStatus::at(None, None, now), KeyStatus::Active);
        assert_eq!(KeyStatus::at(future, None, now), KeyStatus::Active);
        assert_eq!(KeyStatus::at(past, None, now), KeyStatus::Expired);
        assert_eq!(KeyStatus::at(None, future, now), KeyStatus::Rotating);
        assert_eq!(KeyStatus::at(None, past, now), KeyStatus::Revoked);
        assert_eq!(KeyStatus::at(past, past, now), KeyStatus::Revoked);
        assert_eq!(KeyStatus::at(past, future, now), KeyStatus::Expired);
    }
}
