//! The SQLite engine: the embedded default, one file, nothing to install.
//!
//! Times are stored as integer microseconds since the epoch, scopes and
//! metadata as JSON text.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    QueryBuilder, Row, Sqlite, SqlitePool, Transaction,
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    types::Json,
};

use super::{
    AuditEvent, AuditQuery, KeyChanges, KeyStore, KeyTotals, ListQuery, NewKey, OutboxRow,
    PoolStats, RolledUp, Rotated, StoreError, StoreOptions, StoredAudit, StoredKey, Successor,
    UsageBucket, UsageCount, UsageQuery, WriteBy, cidr_texts, json_opt, label_conflict,
    parse_cidrs, sql,
    sqlite_row::{key_from_row, micros, time, time_opt},
    writes::{self, WriteTx},
};
use crate::{
    key::{Digest, KeyId},
    limit::Limits,
    record::KeyRecord,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Every column of `keys` but the label flag, as a macro so queries stay
/// `&'static str` (sqlx refuses dynamic SQL unless it is audited).
macro_rules! key_columns {
    () => {
        "id, project, label, digest, hint, scopes, metadata, created_at, updated_at, \
         expires_at, revoked_at, revoke_reason, replaced_by, replaces, rate_limit, quota, \
         allowed_cidrs, last_used_at"
    };
}

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the file `url` names, e.g. `sqlite:keyward.db`.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid sqlite URL: {e}")))?
            .create_if_missing(true)
            // WAL lets readers run while a writer commits.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.acquire_timeout);
        if !url.contains(":memory:") && !url.contains("mode=memory") {
            create_private(connect.get_filename())?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    async fn begin(&self) -> Result<SqliteTx, StoreError> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that
        // reads first would fail, not wait, when another writer got there.
        Ok(SqliteTx(self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }
}

/// SQLite has one writer at a time: the IMMEDIATE transaction is the lock.
struct SqliteTx(Transaction<'static, Sqlite>);

#[async_trait]
impl WriteTx for SqliteTx {
    async fn lock(&mut self, id: &KeyId) -> Result<StoredKey, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref()
            .map(key_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    async fn release_expired_label(
        &mut self,
        project: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE keys SET label_held = 0 \
             WHERE project = ? AND label = ? AND label_held = 1 AND expires_at <= ?",
        )
        .bind(project)
        .bind(label)
        .bind(micros(now))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert(&mut self, key: &NewKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO keys (id, project, label, label_held, digest, hint, scopes, metadata, \
             created_at, updated_at, expires_at, replaces, rate_limit, quota, allowed_cidrs) \
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .bind(key.id.as_str())
        .bind(&key.project)
        .bind(&key.label)
        .bind(key.digest.as_bytes().as_slice())
        .bind(&key.hint)
        .bind(Json(&key.scopes))
        .bind(Json(&key.metadata))
        .bind(micros(key.created_at))
        .bind(key.expires_at.map(micros))
        .bind(key.replaces.as_ref().map(KeyId::as_str))
        .bind(key.rate_limit.map(Json))
        .bind(key.quota.map(Json))
        .bind(Json(cidr_texts(&key.allowed_cidrs)))
        .execute(&mut *self.0)
        .await
        .map_err(|e| label_conflict(e, &key.project, &key.label))?;
        Ok(())
    }

    async fn save(&mut self, key: &StoredKey, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE keys SET label = ?2, label_held = ?3, scopes = ?4, metadata = ?5, \
             updated_at = ?6, expires_at = ?7, revoked_at = ?8, revoke_reason = ?9, \
             replaced_by = ?10, rate_limit = ?11, quota = ?12, allowed_cidrs = ?13 WHERE id = ?1",
        )
        .bind(key.id.as_str())
        .bind(&key.label)
        .bind(key.status(now).holds_label())
        .bind(Json(&key.scopes))
        .bind(Json(&key.metadata))
        .bind(micros(key.updated_at))
        .bind(key.expires_at.map(micros))
        .bind(key.revoked_at.map(micros))
        .bind(&key.revoke_reason)
        .bind(key.replaced_by.as_ref().map(KeyId::as_str))
        .bind(key.rate_limit.map(Json))
        .bind(key.quota.map(Json))
        .bind(Json(cidr_texts(&key.allowed_cidrs)))
        .execute(&mut *self.0)
        .await
        .map_err(|e| label_conflict(e, &key.project, &key.label))?;
        Ok(())
    }

    async fn audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor_key_id, action, project, target_key_id, source, details) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(micros(event.at))
        .bind(event.actor.as_ref().map(KeyId::as_str))
        .bind(event.action.as_str())
        .bind(&event.project)
        .bind(event.target.as_str())
        .bind(&event.source)
        .bind(Json(&event.details))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn invalidate(&mut self, digest: &Digest, at: DateTime<Utc>) -> Result<(), StoreError> {
        super::outbox::sqlite_record(&mut self.0, digest, at).await
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await?;
        Ok(())
    }

    async fn rollback(self) -> Result<(), StoreError> {
        self.0.rollback().await?;
        Ok(())
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, project, scopes, expires_at, revoked_at, rate_limit, quota, allowed_cidrs \
             FROM keys WHERE digest = ?",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let scopes: Json<Vec<String>> = row.try_get("scopes")?;
        Ok(Some(KeyRecord {
            id: KeyId::from_trusted(row.try_get("id")?),
            project: crate::intern::project(row.try_get::<&str, _>("project")?),
            scopes: crate::intern::scopes(scopes.0),
            expires_at: time_opt(row.try_get("expires_at")?)?,
            revoked_at: time_opt(row.try_get("revoked_at")?)?,
            limits: Limits::new(
                json_opt(row.try_get("rate_limit")?),
                json_opt(row.try_get("quota")?),
            ),
            cidrs: parse_cidrs(row.try_get::<Json<Vec<String>>, _>("allowed_cidrs")?.0)?
                .into_boxed_slice(),
        }))
    }

    async fn get(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredKey>, StoreError> {
        let mut qb =
            QueryBuilder::<Sqlite>::new(concat!("SELECT ", key_columns!(), " FROM keys WHERE 1"));
        sql::push_list_filters(&mut qb, query, micros(query.now));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn insert(&self, key: &NewKey, audit: &AuditEvent) -> Result<StoredKey, StoreError> {
        writes::insert(self.begin().await?, key, audit).await
    }

    async fn revoke(
        &self,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: &str,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        writes::revoke(self.begin().await?, id, at, reason, by).await
    }

    async fn rotate(
        &self,
        old: &KeyId,
        now: DateTime<Utc>,
        old_revoked_at: DateTime<Utc>,
        successor: &mut Successor<'_>,
        by: &WriteBy,
    ) -> Result<Rotated, StoreError> {
        writes::rotate(self.begin().await?, old, now, old_revoked_at, successor, by).await
    }

    async fn update(
        &self,
        id: &KeyId,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        writes::update(self.begin().await?, id, changes, now, by).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAudit>, StoreError> {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT id, at, actor_key_id, action, project, target_key_id, source, details \
             FROM audit_events WHERE 1",
        );
        sql::push_audit_filters(&mut qb, query, micros);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(StoredAudit {
                    id: row.try_get("id")?,
                    at: time(row.try_get("at")?)?,
                    actor: row.try_get("actor_key_id")?,
                    action: row.try_get("action")?,
                    project: row.try_get("project")?,
                    target: row.try_get("target_key_id")?,
                    source: row.try_get("source")?,
                    details: row.try_get::<Json<serde_json::Value>, _>("details")?.0,
                })
            })
            .collect()
    }

    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError> {
        super::sqlite_usage::record(&self.pool, counts).await
    }

    async fn usage_series(
        &self,
        query: &UsageQuery,
        bucket_seconds: i64,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        super::sqlite_usage::series(&self.pool, query, bucket_seconds).await
    }

    async fn busiest_keys(
        &self,
        query: &UsageQuery,
        limit: u32,
    ) -> Result<Vec<KeyTotals>, StoreError> {
        super::sqlite_usage::busiest(&self.pool, query, limit).await
    }

    async fn roll_up_usage(
        &self,
        minutes_before: DateTime<Utc>,
        hours_before: DateTime<Utc>,
    ) -> Result<RolledUp, StoreError> {
        super::sqlite_usage::roll_up(&self.pool, minutes_before, hours_before).await
    }

    async fn invalidations_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        super::outbox::sqlite_after(&self.pool, after, limit).await
    }

    async fn invalidations_start(&self, since: DateTime<Utc>) -> Result<i64, StoreError> {
        super::outbox::sqlite_start(&self.pool, since).await
    }

    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        super::outbox::sqlite_prune(&self.pool, before).await
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
        })
    }
}

/// Creates a missing database file readable by its owner only. Left to
/// SQLite it would follow the umask (0644 under the usual 022) and let every
/// local user read the key digests and the audit trail; SQLite gives the
/// `-wal` and `-shm` files the database file's mode, so they follow. An
/// existing file keeps the mode its operator gave it.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Other(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_new_database_and_its_wal_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        // A permissive directory shows the mode is not inherited from it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let db = dir.path().join("fresh.db");
        let url = format!("sqlite:{}", db.display());
        let store = SqliteStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for name in ["fresh.db", "fresh.db-wal", "fresh.db-shm"] {
            let path = dir.path().join(name);
            assert!(path.exists(), "{name} exists in WAL mode");
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }

    #[tokio::test]
    async fn an_existing_database_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
        let url = format!("sqlite:{}", db.display());
        SqliteStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(mode(&db), 0o640);
    }
}
