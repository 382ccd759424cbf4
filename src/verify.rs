//! The hot path: presented key → decision. Verify, ext_authz Check and admin
//! authentication all come through here, so they cannot disagree.
//!
//! Order matters for cost: an empty or malformed key is answered before any
//! hashing or lookup; only a well-formed key is hashed and looked up.

use std::sync::Arc;

use chrono::Utc;

use crate::{
    cache::{KeyLookup, LookupError, Tier},
    decision::{self, Reason},
    key::{Digest, format},
    record::KeyRecord,
};

/// The outcome of one verification.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub reason: Reason,
    /// The key's record when it exists (even if denied).
    pub record: Option<Arc<KeyRecord>>,
    /// Which tier answered; `None` when no lookup was needed.
    pub tier: Option<Tier>,
}

impl Verdict {
    fn early(reason: Reason) -> Self {
        Self {
            reason,
            record: None,
            tier: None,
        }
    }

    pub fn allowed(&self) -> bool {
        self.reason.allowed()
    }
}

#[derive(Debug, Clone)]
pub struct Verifier {
    lookup: Arc<KeyLookup>,
}

impl Verifier {
    pub fn new(lookup: Arc<KeyLookup>) -> Self {
        Self { lookup }
    }

    pub fn lookup(&self) -> &Arc<KeyLookup> {
        &self.lookup
    }

    /// Decides whether `key` may be used for every scope in `required`.
    /// Fails only when the key is well-formed and no tier can say what it is.
    pub async fn verify<S: AsRef<str>>(
        &self,
        key: &str,
        required: &[S],
    ) -> Result<Verdict, LookupError> {
        if key.is_empty() {
            return Ok(Verdict::early(Reason::Missing));
        }
        let Ok(parsed) = format::parse(key) else {
            return Ok(Verdict::early(Reason::Malformed));
        };
        let now = Utc::now();
        let found = self
            .lookup
            .find(&Digest::of(parsed), now.timestamp_micros())
            .await?;
        let reason = decision::decide(found.record.as_deref(), required, now);
        Ok(Verdict {
            reason,
            record: found.record,
            tier: Some(found.tier),
        })
    }
}
