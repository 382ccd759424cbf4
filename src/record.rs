//! What a decision needs to know about a key: the record the caches hold.
//! Kept small and free of admin-only fields so that a million of them fit in
//! memory.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::{key::KeyId, limit::Limits};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    /// Interned (`intern::project`).
    pub project: Arc<str>,
    /// Interned (`intern::scopes`): keys of a project mostly share a list.
    pub scopes: Arc<[Box<str>]>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set by Revoke (now) and Rotate (now + grace): a future time means the
    /// key still works until then.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Rate limit and quota; `None` for most keys, which then cost nothing
    /// extra to decide.
    pub limits: Option<Box<Limits>>,
    /// Addresses the key may be used from; empty: anywhere.
    pub cidrs: Box<[IpNet]>,
}

impl KeyRecord {
    /// A record that says only whose key it is (no scopes, no expiry, no
    /// limits): for counting calls of a key whose full record is not at
    /// hand, such as usage rows put back after a failed flush.
    pub fn identity(id: KeyId, project: &str) -> Self {
        Self {
            id,
            project: crate::intern::project(project),
            scopes: Arc::from([]),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        }
    }
}
