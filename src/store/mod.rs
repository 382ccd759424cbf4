//! The source of truth: one [`KeyStore`] trait, two engines.
//!
//! Postgres is for production; SQLite is the embedded default so that
//! `keyward serve` runs with nothing installed. Both run the same behaviour
//! suite (`tests/store_behaviour/`). Every admin write commits together with
//! its audit event, or not at all.

mod batch;
mod connect;
mod failover;
#[cfg(test)]
pub(crate) mod fake;
mod hosts;
mod model;
mod options;
mod outbox;
mod pg_read;
pub mod postgres;
mod postgres_usage;
pub mod precision;
mod replica;
mod retryable;
mod session_probe;
mod sql;
pub mod sqlite;
mod sqlite_row;
mod sqlite_usage;
pub mod timeout;
pub mod usage;
mod writes;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    key::{Digest, KeyId},
    record::KeyRecord,
};

pub use batch::BatchedReads;
pub use connect::connect;
pub use hosts::{PgTarget, SessionAttrs, parse_ssl_mode};
pub use model::{
    AuditAction, AuditDraft, AuditEvent, AuditQuery, KeyChanges, KeyStatus, ListQuery, NewKey,
    StoredAudit, StoredKey, WriteBy,
};
pub use options::{PgSecurity, Pooler, StoreOptions};
pub use outbox::OutboxRow;
pub use postgres::writable_pool;
pub use session_probe::check_session;
pub use timeout::TimeoutStore;
pub use usage::{KeyTotals, RolledUp, UsageBucket, UsageCount, UsageOwner, UsageQuery};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("no key with id {0}")]
    NotFound(KeyId),
    #[error("project {project:?} already has a live key labelled {label:?}")]
    LabelTaken { project: String, label: String },
    /// The key's state forbids the change (e.g. rotating a revoked key).
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match error {
            // Protocol: the connection broke off mid-exchange (e.g. a cut
            // during the SSLRequest that sslmode=prefer sends first) or the
            // fail-over check refused a server that does not fit; either
            // way the database, not the request, failed, and nothing
            // committed.
            E::Io(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::Tls(_)
            | E::Protocol(_) => StoreError::Unavailable(error.to_string()),
            E::Database(ref db)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some_and(|pg| retryable::is_transient_sqlstate(pg.code())) =>
            {
                StoreError::Unavailable(error.to_string())
            }
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => StoreError::Other(other.to_string()),
        }
    }
}

/// The only unique constraint a write can break in practice is the live
/// label (ids and digests carry 128 and 256 random bits).
fn label_conflict(error: sqlx::Error, project: &str, label: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::LabelTaken {
            project: project.to_owned(),
            label: label.to_owned(),
        },
        _ => error.into(),
    }
}

/// CIDRs as stored: their canonical text.
fn cidr_texts(cidrs: &[ipnet::IpNet]) -> Vec<String> {
    cidrs.iter().map(ToString::to_string).collect()
}

fn parse_cidrs(texts: Vec<String>) -> Result<Vec<ipnet::IpNet>, StoreError> {
    texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|_| StoreError::Other(format!("stored CIDR {t:?} is invalid")))
        })
        .collect()
}

fn json_opt<T>(value: Option<sqlx::types::Json<T>>) -> Option<T> {
    value.map(|j| j.0)
}

/// Builds a rotated key's successor from the locked old row.
pub type Successor<'a> = dyn FnMut(&StoredKey) -> NewKey + Send + 'a;

/// Results of the writes that change a key another replica may have cached.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub new: StoredKey,
    pub old: StoredKey,
}

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Creates or upgrades the schema; safe to run while servers use it.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The hot-path read: the record for a digest, if any.
    async fn find_by_digest(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError>;

    /// The records of those `digests` that exist, with their digests; for
    /// [`BatchedReads`], which gathers concurrent hot-path reads. An engine
    /// that can read many digests in one round trip overrides this.
    async fn find_by_digests(
        &self,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, KeyRecord)>, StoreError> {
        let mut found = Vec::new();
        for digest in digests {
            if let Some(record) = self.find_by_digest(digest).await? {
                found.push((*digest, record));
            }
        }
        Ok(found)
    }

    async fn get(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError>;

    /// Keys matching the query, newest (highest id) first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredKey>, StoreError>;

    /// Inserts a key; its label must be free among the project's live keys.
    async fn insert(&self, key: &NewKey, audit: &AuditEvent) -> Result<StoredKey, StoreError>;

    /// Revokes a key at `at`. A key already revoked is returned unchanged
    /// (and no audit event is written); a rotating key is revoked at once.
    async fn revoke(
        &self,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: &str,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError>;

    /// Replaces an active key by the one `successor` builds from the locked
    /// row (so it copies the key as it is, not as an earlier read saw it),
    /// which takes over its label; the old key is revoked at
    /// `old_revoked_at` (now + grace).
    async fn rotate(
        &self,
        old: &KeyId,
        now: DateTime<Utc>,
        old_revoked_at: DateTime<Utc>,
        successor: &mut Successor<'_>,
        by: &WriteBy,
    ) -> Result<Rotated, StoreError>;

    /// Applies `changes` to an active or expired key.
    async fn update(
        &self,
        id: &KeyId,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError>;

    /// Audit events matching the query, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAudit>, StoreError>;

    /// Adds a batch of counted calls to the minute rows (creating them as
    /// needed) and moves each key's `last_used_at` forward to its latest
    /// minute with an allowed call, in one transaction.
    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError>;

    /// Calls over the query's range in buckets of `bucket_seconds`, per
    /// outcome, oldest first; minute and hour rows together.
    async fn usage_series(
        &self,
        query: &UsageQuery,
        bucket_seconds: i64,
    ) -> Result<Vec<UsageBucket>, StoreError>;

    /// The keys with the most calls over the query's range, busiest first.
    async fn busiest_keys(
        &self,
        query: &UsageQuery,
        limit: u32,
    ) -> Result<Vec<KeyTotals>, StoreError>;

    /// Folds minute rows older than `minutes_before` into hour rows and
    /// deletes hour rows older than `hours_before`. Safe to run from several
    /// replicas at once: a minute row is folded exactly once.
    async fn roll_up_usage(
        &self,
        minutes_before: DateTime<Utc>,
        hours_before: DateTime<Utc>,
    ) -> Result<RolledUp, StoreError>;

    /// Outbox rows with a seq above `after`, in seq order, at most `limit`.
    async fn invalidations_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError>;

    /// Where a tail must start (the seq before the first row) to see every
    /// outbox row written after `since`.
    async fn invalidations_start(&self, since: DateTime<Utc>) -> Result<i64, StoreError>;

    /// Deletes outbox rows written before `before`; how many went.
    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// The row of `digest` changed at `at` (µs): an engine that reads from a
    /// replica must not answer for it from one that may not have replayed
    /// the change. Called by the lookup for its own writes and for every
    /// invalidation it hears of (bus, outbox).
    fn changed(&self, _digest: &Digest, _at: i64) {}

    /// Connections in the pool, for the metrics; `None` if not pooled.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

#[cfg(test)]
mod error_tests {
    use super::StoreError;

    #[test]
    fn a_connection_that_broke_off_is_unavailable_not_internal() {
        for error in [
            sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into()),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
        ] {
            let text = error.to_string();
            assert!(
                matches!(StoreError::from(error), StoreError::Unavailable(_)),
                "{text}"
            );
        }
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
    }
}
