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
    usage::UsageCounter,
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
    /// Counts every decision about a known key, when usage is kept.
    usage: Option<Arc<UsageCounter>>,
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
        Self {
            lookup,
            limiter,
            usage: None,
        }
    }

    /// Counts each decision about a known key in `usage`.
    pub fn with_usage(mut self, usage: Arc<UsageCounter>) -> Self {
        self.usage = Some(usage);
        self
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
        if let (Some(usage), Some(record)) = (&self.usage, &verdict.record) {
            usage.record(record, verdict.reason, now.timestamp_micros());
        }
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cache::LocalOptions,
        store::{self, KeyStore},
    };

    /// A verifier over an empty SQLite store, and the store's lookups so far.
    async fn verifier() -> (Verifier, Arc<KeyLookup>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("v.db").display());
        let store: Arc<dyn KeyStore> = store::connect(&url, &Default::default()).await.unwrap();
        store.migrate().await.unwrap();
        let lookup = Arc::new(KeyLookup::local(store, &LocalOptions::default()));
        (
            Verifier::new(lookup.clone(), Limiter::new(None)),
            lookup,
            dir,
        )
    }

    #[tokio::test]
    async fn an_empty_key_is_missing_and_looks_nothing_up() {
        let (verifier, lookup, _dir) = verifier().await;
        let verdict = verifier.verify("", &["a"], None).await.unwrap();
        assert_eq!(verdict.reason, Reason::Missing);
        assert!(verdict.tier.is_none() && verdict.record.is_none());
        assert_eq!(lookup.l1_entries(), 0);
    }

    #[tokio::test]
    async fn a_bad_checksum_is_malformed_and_looks_nothing_up() {
        let (verifier, lookup, _dir) = verifier().await;
        let key = format::generate("acme");
        let mut bad = key.expose().to_owned();
        let last = bad.pop().unwrap();
        bad.push(if last == 'a' { 'b' } else { 'a' });
        for presented in [bad.as_str(), "acme_short", "no key at all"] {
            let verdict = verifier
                .verify(presented, &[] as &[&str], None)
                .await
                .unwrap();
            assert_eq!(verdict.reason, Reason::Malformed, "{presented}");
            assert!(verdict.tier.is_none());
        }
        assert_eq!(lookup.l1_entries(), 0, "nothing cached, nothing read");
    }

    #[tokio::test]
    async fn a_well_formed_stranger_is_unknown() {
        let (verifier, _lookup, _dir) = verifier().await;
        let key = format::generate("acme");
        let verdict = verifier
            .verify(key.expose(), &[] as &[&str], None)
            .await
            .unwrap();
        assert_eq!(verdict.reason, Reason::Unknown);
        assert_eq!(verdict.tier, Some(Tier::Store));
    }
}
