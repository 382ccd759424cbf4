//! The invalidation outbox, on both engines: what every write that can
//! narrow a key recorded in its own transaction (see `cache::outbox` for the
//! replica side and the reasoning).
//!
//! Tailing by `seq > last` is only sound if a row never becomes visible after
//! a row with a higher seq. SQLite has one writer at a time, so commit order
//! is seq order. On Postgres a sequence hands out numbers at insert time and
//! transactions may commit in another order, so each writer takes one
//! transaction-scoped advisory lock just before it inserts its row: the
//! number is drawn under the lock and the lock is released only after the
//! commit is visible, so seqs become visible in order. The lock is the last
//! thing a write takes and it is held for one insert and the commit, so it
//! cannot deadlock and serialises writers only for that long.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row, SqliteConnection, SqlitePool};

use super::StoreError;
use crate::key::Digest;

/// One outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub digest: Digest,
    /// The write's time (µs since the epoch, the writing replica's clock).
    pub at: i64,
}

/// Any constant works: it only has to be the same for every writer.
const OUTBOX_LOCK: i64 = 0x6b65_7977_6172_6401;

fn digest_of(bytes: &[u8]) -> Result<Digest, StoreError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Other("outbox digest is not 32 bytes".to_owned()))?;
    Ok(Digest::from_bytes(bytes))
}

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

// Every Postgres statement here takes `named`: behind a transaction pooler
// none may be a named prepared statement (see `pg_read`).
pub(super) async fn pg_record(
    conn: &mut PgConnection,
    named: bool,
    digest: &Digest,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .persistent(named)
        .bind(OUTBOX_LOCK)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO invalidations (digest, at) VALUES ($1, $2)")
        .persistent(named)
        .bind(digest.as_bytes().as_slice())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn pg_after(
    conn: &mut PgConnection,
    named: bool,
    after: i64,
    limit: u32,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, digest, at FROM invalidations WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .persistent(named)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxRow {
                seq: row.try_get("seq")?,
                digest: digest_of(row.try_get::<&[u8], _>("digest")?)?,
                at: micros(row.try_get("at")?),
            })
        })
        .collect()
}

pub(super) async fn pg_start(
    conn: &mut PgConnection,
    named: bool,
    since: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let seq: i64 = sqlx::query_scalar(
        "SELECT COALESCE((SELECT MIN(seq) - 1 FROM invalidations WHERE at > $1), \
                         (SELECT MAX(seq) FROM invalidations), 0)",
    )
    .persistent(named)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(seq)
}

pub(super) async fn pg_prune(
    conn: &mut PgConnection,
    named: bool,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM invalidations WHERE at < $1")
        .persistent(named)
        .bind(before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn sqlite_record(
    conn: &mut SqliteConnection,
    digest: &Digest,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO invalidations (digest, at) VALUES (?, ?)")
        .bind(digest.as_bytes().as_slice())
        .bind(micros(at))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn sqlite_after(
    pool: &SqlitePool,
    after: i64,
    limit: u32,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows =
        sqlx::query("SELECT seq, digest, at FROM invalidations WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxRow {
                seq: row.try_get("seq")?,
                digest: digest_of(row.try_get::<&[u8], _>("digest")?)?,
                at: row.try_get("at")?,
            })
        })
        .collect()
}

pub(super) async fn sqlite_start(
    pool: &SqlitePool,
    since: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let seq: i64 = sqlx::query_scalar(
        "SELECT COALESCE((SELECT MIN(seq) - 1 FROM invalidations WHERE at > ?), \
                         (SELECT MAX(seq) FROM invalidations), 0)",
    )
    .bind(micros(since))
    .fetch_one(pool)
    .await?;
    Ok(seq)
}

pub(super) async fn sqlite_prune(
    pool: &SqlitePool,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM invalidations WHERE at < ?")
        .bind(micros(before))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
