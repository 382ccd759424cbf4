//! The hot path: presented key → decision. Verify, ext_authz Check and admin
//! authentication all come through here, so they cannot disagree.
//!
//! Order matters for cost: an empty or malformed key is answered before any
//! hashing or lookup; only a well-formed key is hashed and looked up; only a
//! key that passes every stateless check and has limits touches the limiter.

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::Utc;

use crate::{
    cache::{KeyLookup, LookupError, Tier},
    decision::{self, Reason},
    key::{Digest, format},
    limit::{Limiter, Outcome},
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
    /// For a rate-limited call: when the next one can be allowed.
    pub retry_after: Option<Duration>,
    /// For a key with a quota: what is left after this call.
    pub quota_remaining: Option<i64>,
}

impl Verdict {
    fn early(reason: Reason) -> Self {
        Self {
            reason,
            record: None,
            tier: None,
            retry_after: None,
            quota_remaining: None,
        }
    }

    pub fn allowed(&self) -> bool {
        self.reason.allowed()
    }
}

#[derive(Clone)]
pub struct Verifier {
    lookup: Arc<KeyLookup>,
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("lookup", &self.lookup)
            .finish()
    }
}

impl Verifier {
    pub fn new(lookup: Arc<KeyLookup>, limiter: Arc<Limiter>) -> Self {
        Self { lookup, limiter }
    }

    pub fn lookup(&self) -> &Arc<KeyLookup> {
        &self.lookup
    }

    /// Decides whether `key` may be used for every scope in `required`,
    /// from `client_ip` when known. Fails only when the key is well-formed
    /// and no tier can say what it is.
    pub async fn verify<S: AsRef<str>>(
        &self,
        key: &str,
        required: &[S],
        client_ip: Option<IpAddr>,
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
        let mut verdict = Verdict {
            reason: decision::decide(found.record.as_deref(), required, client_ip, now),
            record: found.record,
            tier: Some(found.tier),
            retry_after: None,
            quota_remaining: None,
        };
        if verdict.reason == Reason::Ok
            && let Some(record) = &verdict.record
            && let Some(limits) = &record.limits
        {
            match self.limiter.check(&record.id, limits, now).await {
                Outcome::Allowed { remaining } => verdict.quota_remaining = remaining,
                outcome @ Outcome::RateLimited { .. } => {
                    verdict.reason = Reason::RateLimited;
                    verdict.retry_after = outcome.retry_after();
                }
                Outcome::QuotaExceeded => {
                    verdict.reason = Reason::QuotaExceeded;
                    verdict.quota_remaining = Some(0);
                }
            }
        }
        Ok(verdict)
    }
}
