//! A store wrapper that counts the calls reaching the real store.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyward::{
    key::{Digest, KeyId},
    record::KeyRecord,
    store::{
        AuditEvent, AuditQuery, KeyChanges, KeyStore, KeyTotals, ListQuery, NewKey, OutboxRow,
        RolledUp, Rotated, StoreError, StoredAudit, StoredKey, Successor, UsageBucket, UsageCount,
        UsageQuery, WriteBy,
    },
};

pub struct CountingStore {
    inner: Arc<dyn KeyStore>,
    /// Calls of every kind.
    pub calls: AtomicUsize,
    /// Hot-path reads (`find_by_digest`) only.
    pub lookups: AtomicUsize,
    /// While set, hot-path reads fail as if the database were down.
    pub fail_lookups: AtomicBool,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn KeyStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: AtomicUsize::new(0),
            lookups: AtomicUsize::new(0),
            fail_lookups: AtomicBool::new(false),
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    fn outbox_up(&self) -> Result<(), StoreError> {
        if self.fail_lookups.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        Ok(())
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl KeyStore for CountingStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.count();
        self.inner.migrate().await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        self.count();
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.fail_lookups.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        self.inner.find_by_digest(digest).await
    }

    async fn get(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        self.count();
        self.inner.get(id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredKey>, StoreError> {
        self.count();
        self.inner.list(query).await
    }

    async fn insert(&self, key: &NewKey, audit: &AuditEvent) -> Result<StoredKey, StoreError> {
        self.count();
        self.inner.insert(key, audit).await
    }

    async fn revoke(
        &self,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: &str,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        self.count();
        self.inner.revoke(id, at, reason, by).await
    }

    async fn rotate(
        &self,
        old: &KeyId,
        now: DateTime<Utc>,
        old_revoked_at: DateTime<Utc>,
        successor: &mut Successor<'_>,
        by: &WriteBy,
    ) -> Result<Rotated, StoreError> {
        self.count();
        self.inner
            .rotate(old, now, old_revoked_at, successor, by)
            .await
    }

    async fn update(
        &self,
        id: &KeyId,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        self.count();
        self.inner.update(id, changes, now, by).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAudit>, StoreError> {
        self.count();
        self.inner.list_audit(query).await
    }

    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError> {
        self.count();
        self.inner.record_usage(counts).await
    }

    async fn usage_series(
        &self,
        query: &UsageQuery,
        bucket_seconds: i64,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        self.count();
        self.inner.usage_series(query, bucket_seconds).await
    }

    async fn busiest_keys(
        &self,
        query: &UsageQuery,
        limit: u32,
    ) -> Result<Vec<KeyTotals>, StoreError> {
        self.count();
        self.inner.busiest_keys(query, limit).await
    }

    async fn roll_up_usage(
        &self,
        minutes_before: DateTime<Utc>,
        hours_before: DateTime<Utc>,
    ) -> Result<RolledUp, StoreError> {
        self.count();
        self.inner.roll_up_usage(minutes_before, hours_before).await
    }

    // The outbox tail runs in the background: not counted, so that counts
    // stay those of the calls a test makes; down whenever lookups are.
    async fn invalidations_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_up()?;
        self.inner.invalidations_after(after, limit).await
    }

    async fn invalidations_start(&self, since: DateTime<Utc>) -> Result<i64, StoreError> {
        self.outbox_up()?;
        self.inner.invalidations_start(since).await
    }

    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.outbox_up()?;
        self.inner.prune_invalidations(before).await
    }
}
