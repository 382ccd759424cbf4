//! The Postgres engine: the production source of truth.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, migrate::Migrator, postgres::PgRow, types::Json};

use super::{
    AuditEvent, AuditQuery, KeyChanges, KeyStore, KeyTotals, ListQuery, NewKey, OutboxRow,
    PoolStats, RolledUp, Rotated, StoreError, StoreOptions, StoredAudit, StoredKey, Successor,
    UsageBucket, UsageCount, UsageQuery, WriteBy,
    failover::{self, PoolSettings},
    hosts::{PgTarget, SessionAttrs},
    json_opt, parse_cidrs,
    pg_read::ReadConn,
    replica::ReplicaReads,
    sql, writes,
};
use crate::{
    key::{Digest, KeyId},
    limit::Limits,
    record::KeyRecord,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Every column of `keys` but the label flag, as a macro so queries stay
/// `&'static str` (sqlx refuses dynamic SQL unless it is audited).
macro_rules! key_columns {
    () => {
        "id, project, label, digest, hint, scopes, metadata, created_at, updated_at, \
         expires_at, revoked_at, revoke_reason, replaced_by, replaces, rate_limit, quota, \
         allowed_cidrs, last_used_at"
    };
}

/// The columns a decision needs (`KeyRecord`).
macro_rules! record_columns {
    () => {
        "id, project, scopes, expires_at, revoked_at, rate_limit, quota, allowed_cidrs"
    };
}

// After the column macros, which it uses.
mod row;
mod tx;

use row::key_from_row;
use tx::PgTx;

pub struct PgStore {
    pool: PgPool,
    /// Where hot-path reads may go instead, when it has caught up.
    replica: Option<ReplicaReads>,
    /// False behind a transaction pooler: see [`super::Pooler`].
    named: bool,
    /// Where migrations take their session lock, when not the pool's URL.
    session_url: Option<String>,
    /// For the migration session.
    options: StoreOptions,
}

/// A pool over a URL whose server must take writes (the database URL, the
/// session URL): `target_session_attrs` defaults to read-write there, and
/// a standby is refused.
pub fn writable_pool(
    url: &str,
    options: &StoreOptions,
    max_connections: u32,
    application_name: &'static str,
) -> Result<PgPool, StoreError> {
    let target = PgTarget::parse(url, SessionAttrs::ReadWrite, &options.security)?;
    if !target.attrs.writable() && target.explicit && target.attrs != SessionAttrs::Any {
        return Err(StoreError::Other(
            "this postgres URL takes writes: target_session_attrs must be read-write, primary \
             or any (standbys are for --database-read-url)"
                .to_owned(),
        ));
    }
    let settings = PoolSettings {
        max_connections,
        acquire_timeout: options.acquire_timeout,
        application_name,
    };
    Ok(failover::pool(&target, &settings))
}

impl PgStore {
    /// Builds the pools without connecting; the first query connects. A URL
    /// may list several hosts (`failover.rs`); `options.read_url` sends
    /// hot-path reads to a replica (`replica.rs`).
    pub fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let pool = writable_pool(url, options, options.max_connections, "keyward")?;
        let replica = match &options.read_url {
            Some(read_url) => {
                let target =
                    PgTarget::parse(read_url, SessionAttrs::PreferStandby, &options.security)
                        .map_err(|e| StoreError::Other(format!("--database-read-url: {e}")))?;
                let settings = PoolSettings {
                    max_connections: options.max_connections,
                    acquire_timeout: options.acquire_timeout,
                    application_name: "keyward-read",
                };
                Some(ReplicaReads::new(
                    pool.clone(),
                    failover::pool(&target, &settings),
                    options.read_max_lag,
                    options.read_margin,
                ))
            }
            None => None,
        };
        Ok(Self {
            pool,
            replica,
            named: options.pooler.named_statements(),
            session_url: options.session_url.clone(),
            options: options.clone(),
        })
    }

    /// The pool, for the invalidation bus (LISTEN/NOTIFY) and metrics.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn read(&self) -> Result<ReadConn, StoreError> {
        ReadConn::open(&self.pool, self.named).await
    }

    async fn begin(&self) -> Result<PgTx, StoreError> {
        Ok(PgTx {
            tx: self.pool.begin().await?,
            named: self.named,
        })
    }
}

#[async_trait]
impl KeyStore for PgStore {
    /// The migrator keeps a session advisory lock across its statements and
    /// names its statements: behind a transaction pooler it runs on the
    /// session URL, or not at all.
    async fn migrate(&self) -> Result<(), StoreError> {
        match (&self.session_url, self.named) {
            (Some(url), _) => {
                // One connection: the lock and the migrations share it.
                let session = writable_pool(url, &self.options, 1, "keyward-migrate")
                    .map_err(|e| StoreError::Other(format!("--database-session-url: {e}")))?;
                let migrated = MIGRATOR.run(&session).await;
                session.close().await;
                migrated?;
            }
            (None, true) => MIGRATOR.run(&self.pool).await?,
            (None, false) => {
                return Err(StoreError::Other(
                    "migrations cannot run through a transaction pooler: set \
                     --database-session-url (KEYWARD_DATABASE_SESSION_URL) to a direct \
                     connection, or run `keyward migrate` against one and start with --no-migrate"
                        .to_owned(),
                ));
            }
        }
        Ok(())
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        if self.replica.is_some() {
            let found = self.find_by_digests(std::slice::from_ref(digest)).await?;
            return Ok(found.into_iter().next().map(|(_, record)| record));
        }
        let mut conn = self.read().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM keys WHERE digest = $1"
        ))
        .bind(digest.as_bytes().as_slice())
        .persistent(self.named)
        .fetch_optional(&mut *conn)
        .await?;
        conn.done().await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// One round trip for the whole batch: `= ANY` over the digests' index;
    /// two with a read replica that cannot answer for all of them.
    async fn find_by_digests(
        &self,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, KeyRecord)>, StoreError> {
        let Some(replica) = &self.replica else {
            return records(&self.pool, self.named, digests).await;
        };
        let (remote, local) = replica.split(digests);
        let mut found = Vec::new();
        let mut local = local;
        if !remote.is_empty() {
            match records(replica.pool(), self.named, &remote).await {
                Ok(rows) => found = rows,
                // A replica that fails is no reason to fail the lookup: the
                // primary answers (and the watermark soon stops it being read).
                Err(error) => {
                    tracing::debug!(%error, "read replica failed; reading the primary");
                    metrics::counter!("keyward_db_replica_skipped_total", "why" => "error")
                        .increment(remote.len() as u64);
                    local.extend(remote);
                }
            }
        }
        if !local.is_empty() {
            found.extend(records(&self.pool, self.named, &local).await?);
        }
        Ok(found)
    }

    async fn get(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        let mut conn = self.read().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE id = $1"
        ))
        .bind(id.as_str())
        .persistent(self.named)
        .fetch_optional(&mut *conn)
        .await?;
        conn.done().await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredKey>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE TRUE"
        ));
        sql::push_list_filters(&mut qb, query, query.now);
        let mut conn = self.read().await?;
        let rows = qb
            .build()
            .persistent(self.named)
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
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
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT id, at, actor_key_id, action, project, target_key_id, source, details \
             FROM audit_events WHERE TRUE",
        );
        sql::push_audit_filters(&mut qb, query, |t| t);
        let mut conn = self.read().await?;
        let rows = qb
            .build()
            .persistent(self.named)
            .fetch_all(&mut *conn)
            .await?;
        conn.done().await?;
        rows.iter()
            .map(|row| {
                Ok(StoredAudit {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
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
        super::postgres_usage::record(&self.pool, self.named, counts).await
    }

    async fn usage_series(
        &self,
        query: &UsageQuery,
        bucket_seconds: i64,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        let mut conn = self.read().await?;
        let series =
            super::postgres_usage::series(&mut conn, self.named, query, bucket_seconds).await?;
        conn.done().await?;
        Ok(series)
    }

    async fn busiest_keys(
        &self,
        query: &UsageQuery,
        limit: u32,
    ) -> Result<Vec<KeyTotals>, StoreError> {
        let mut conn = self.read().await?;
        let busiest = super::postgres_usage::busiest(&mut conn, self.named, query, limit).await?;
        conn.done().await?;
        Ok(busiest)
    }

    async fn roll_up_usage(
        &self,
        minutes_before: DateTime<Utc>,
        hours_before: DateTime<Utc>,
    ) -> Result<RolledUp, StoreError> {
        super::postgres_usage::roll_up(&self.pool, self.named, minutes_before, hours_before).await
    }

    async fn invalidations_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        {
            let mut conn = self.read().await?;
            let answer = super::outbox::pg_after(&mut conn, self.named, after, limit).await?;
            conn.done().await?;
            Ok(answer)
        }
    }

    async fn invalidations_start(&self, since: DateTime<Utc>) -> Result<i64, StoreError> {
        {
            let mut conn = self.read().await?;
            let answer = super::outbox::pg_start(&mut conn, self.named, since).await?;
            conn.done().await?;
            Ok(answer)
        }
    }

    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        {
            let mut conn = self.read().await?;
            let answer = super::outbox::pg_prune(&mut conn, self.named, before).await?;
            conn.done().await?;
            Ok(answer)
        }
    }

    fn changed(&self, digest: &Digest, at: i64) {
        if let Some(replica) = &self.replica {
            replica.changed(digest, at);
        }
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
        })
    }
}

async fn records(
    pool: &PgPool,
    named: bool,
    digests: &[Digest],
) -> Result<Vec<(Digest, KeyRecord)>, StoreError> {
    let wanted: Vec<&[u8]> = digests.iter().map(|d| d.as_bytes().as_slice()).collect();
    let mut conn = ReadConn::open(pool, named).await?;
    let rows = sqlx::query(concat!(
        "SELECT digest, ",
        record_columns!(),
        " FROM keys WHERE digest = ANY($1)"
    ))
    .bind(&wanted)
    .persistent(named)
    .fetch_all(&mut *conn)
    .await?;
    conn.done().await?;
    rows.iter()
        .map(|row| {
            let digest: Vec<u8> = row.try_get("digest")?;
            let digest = Digest::from_slice(&digest)
                .ok_or_else(|| StoreError::Other("stored digest is not 32 bytes".to_owned()))?;
            Ok((digest, record_from_row(row)?))
        })
        .collect()
}

fn record_from_row(row: &PgRow) -> Result<KeyRecord, StoreError> {
    let scopes: Vec<String> = row.try_get("scopes")?;
    Ok(KeyRecord {
        id: KeyId::from_trusted(row.try_get("id")?),
        project: crate::intern::project(row.try_get::<&str, _>("project")?),
        scopes: crate::intern::scopes(scopes),
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        limits: Limits::new(
            json_opt(row.try_get("rate_limit")?),
            json_opt(row.try_get("quota")?),
        ),
        cidrs: parse_cidrs(row.try_get("allowed_cidrs")?)?.into_boxed_slice(),
    })
}
