//! Test stores that only answer hot-path reads: the fake decides what a
//! read finds (and, for the usage tests, what a usage write does); every
//! admin method fails, as nothing under test calls it.

use std::ops::Deref;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AuditEvent, AuditQuery, KeyChanges, KeyStore, KeyTotals, ListQuery, NewKey, OutboxRow,
    RolledUp, Rotated, StoreError, StoredAudit, StoredKey, Successor, UsageBucket, UsageCount,
    UsageQuery, WriteBy,
};
use crate::{
    key::{Digest, KeyId},
    record::KeyRecord,
};

#[async_trait]
pub(crate) trait Reads: Send + Sync + 'static {
    async fn read(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError>;

    /// Many digests in one read; by default one `read` each.
    async fn read_many(&self, digests: &[Digest]) -> Result<Vec<(Digest, KeyRecord)>, StoreError> {
        let mut found = Vec::new();
        for digest in digests {
            if let Some(record) = self.read(digest).await? {
                found.push((*digest, record));
            }
        }
        Ok(found)
    }

    /// A usage batch written; by default refused, like every write.
    async fn write_usage(&self, _: &[UsageCount]) -> Result<(), StoreError> {
        unused()
    }
}

/// A [`KeyStore`] made of a [`Reads`]; derefs to it, so tests reach the
/// fake's own counters and switches.
pub(crate) struct ReadsOnly<R>(pub R);

impl<R> Deref for ReadsOnly<R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.0
    }
}

/// A record of project `p` with no scopes, limits or expiry.
pub(crate) fn record() -> KeyRecord {
    KeyRecord {
        id: KeyId::generate(),
        project: "p".into(),
        scopes: std::sync::Arc::from([]),
        expires_at: None,
        revoked_at: None,
        limits: None,
        cidrs: Box::new([]),
    }
}

fn unused<T>() -> Result<T, StoreError> {
    Err(StoreError::Other("not used by this test".into()))
}

#[async_trait]
impl<R: Reads> KeyStore for ReadsOnly<R> {
    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn find_by_digest(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        self.0.read(digest).await
    }
    async fn find_by_digests(
        &self,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, KeyRecord)>, StoreError> {
        self.0.read_many(digests).await
    }
    async fn get(&self, _: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        unused()
    }
    async fn list(&self, _: &ListQuery) -> Result<Vec<StoredKey>, StoreError> {
        unused()
    }
    async fn insert(&self, _: &NewKey, _: &AuditEvent) -> Result<StoredKey, StoreError> {
        unused()
    }
    async fn revoke(
        &self,
        _: &KeyId,
        _: DateTime<Utc>,
        _: &str,
        _: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        unused()
    }
    async fn rotate(
        &self,
        _: &KeyId,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: &mut Successor<'_>,
        _: &WriteBy,
    ) -> Result<Rotated, StoreError> {
        unused()
    }
    async fn update(
        &self,
        _: &KeyId,
        _: &KeyChanges,
        _: DateTime<Utc>,
        _: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        unused()
    }
    async fn list_audit(&self, _: &AuditQuery) -> Result<Vec<StoredAudit>, StoreError> {
        unused()
    }
    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError> {
        self.0.write_usage(counts).await
    }
    async fn usage_series(&self, _: &UsageQuery, _: i64) -> Result<Vec<UsageBucket>, StoreError> {
        unused()
    }
    async fn busiest_keys(&self, _: &UsageQuery, _: u32) -> Result<Vec<KeyTotals>, StoreError> {
        unused()
    }
    async fn roll_up_usage(
        &self,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<RolledUp, StoreError> {
        unused()
    }
    async fn invalidations_after(&self, _: i64, _: u32) -> Result<Vec<OutboxRow>, StoreError> {
        unused()
    }
    async fn invalidations_start(&self, _: DateTime<Utc>) -> Result<i64, StoreError> {
        unused()
    }
    async fn prune_invalidations(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        unused()
    }
}
