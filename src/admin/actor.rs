//! Who makes an admin call and which projects it reaches: below the admin
//! operations and the usage report, which both check it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    error::Error,
    key::KeyId,
    scope,
    store::{AuditAction, AuditDraft, AuditEvent, StoredKey, WriteBy},
};

/// Which projects an admin key may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    AllProjects,
    Project(Arc<str>),
}

/// Who is making an admin call.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The admin key's id; `None` for local commands such as bootstrap.
    pub key_id: Option<KeyId>,
    pub reach: Reach,
    /// The caller's address, for the audit trail.
    pub source: String,
}

impl Actor {
    pub(crate) fn check_reach(&self, project: &str) -> Result<(), Error> {
        match &self.reach {
            Reach::AllProjects => Ok(()),
            Reach::Project(own) if **own == *project => Ok(()),
            Reach::Project(own) => Err(Error::PermissionDenied(format!(
                "this admin key manages project {own:?} only, not {project:?}"
            ))),
        }
    }

    /// Whether this admin may see or change `key`. A key of another project
    /// gets the answer an unknown id gets, so a project admin learns
    /// nothing about other projects from a key id.
    pub(crate) fn check_key(&self, key: &StoredKey) -> Result<(), Error> {
        match &self.reach {
            Reach::AllProjects => Ok(()),
            Reach::Project(own) if **own == *key.project => Ok(()),
            Reach::Project(_) => Err(not_found(&key.id)),
        }
    }

    /// Reserved (`keyward:`) scopes make admins; only an all-projects admin
    /// may put them on a key, else a project admin could mint keys with
    /// powers keyward has not given it.
    pub(super) fn check_grant(&self, scopes: &[String]) -> Result<(), Error> {
        match (&self.reach, scopes.iter().find(|s| scope::is_reserved(s))) {
            (Reach::Project(_), Some(reserved)) => Err(Error::PermissionDenied(format!(
                "only an all-projects admin may grant {reserved:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Who is writing, for a write decided on the locked row.
    pub(super) fn write_by(
        &self,
        action: AuditAction,
        at: DateTime<Utc>,
        details: serde_json::Value,
    ) -> WriteBy {
        WriteBy {
            project: match &self.reach {
                Reach::AllProjects => None,
                Reach::Project(own) => Some(own.to_string()),
            },
            audit: AuditDraft {
                at,
                actor: self.key_id.clone(),
                action,
                source: self.source.clone(),
                details,
            },
        }
    }

    pub(super) fn event(
        &self,
        action: AuditAction,
        key: &StoredKey,
        at: DateTime<Utc>,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            at,
            actor: self.key_id.clone(),
            action,
            project: key.project.clone(),
            target: key.id.clone(),
            source: self.source.clone(),
            details,
        }
    }
}

/// The one answer for a key id the caller cannot see, known or not.
pub(super) fn not_found(id: &KeyId) -> Error {
    Error::from(crate::store::StoreError::NotFound(id.clone()))
}
