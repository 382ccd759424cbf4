//! Usage rows on SQLite (times in integer microseconds): batched upserts,
//! bucketed reads, the roll-up.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{
    KeyTotals, RolledUp, StoreError, UsageBucket, UsageCount, UsageQuery, sql,
    sqlite_row::{micros, time},
};

/// Rows per INSERT: 5 parameters each, well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1_000;
const MICROS_PER_HOUR: i64 = 3_600_000_000;

pub(super) async fn record(pool: &SqlitePool, counts: &[UsageCount]) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for chunk in counts.chunks(ROWS_PER_STATEMENT) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO usage_minute (key_id, project, minute, outcome, calls) ",
        );
        qb.push_values(chunk, |mut row, count| {
            row.push_bind(count.key_id.as_str())
                .push_bind(count.project.as_str())
                .push_bind(micros(count.minute))
                .push_bind(count.outcome)
                .push_bind(count.calls);
        });
        qb.push(
            " ON CONFLICT (key_id, minute, outcome) \
             DO UPDATE SET calls = usage_minute.calls + excluded.calls",
        );
        qb.build().execute(&mut *tx).await?;
    }
    let (ids, used_at) = super::usage::last_allowed(counts);
    for (id, at) in ids.iter().zip(used_at) {
        sqlx::query(
            "UPDATE keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?",
        )
        .bind(micros(at))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn series(
    pool: &SqlitePool,
    query: &UsageQuery,
    bucket_seconds: i64,
) -> Result<Vec<UsageBucket>, StoreError> {
    let step = bucket_seconds * 1_000_000;
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT (t / ");
    qb.push_bind(step)
        .push(") * ")
        .push_bind(step)
        .push(" AS bucket, outcome, sum(calls) AS calls FROM ");
    sql::push_usage_rows(&mut qb, query, micros);
    qb.push(" GROUP BY 1, 2 ORDER BY 1, 2");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(UsageBucket {
                start: time(row.try_get("bucket")?)?,
                outcome: row.try_get("outcome")?,
                calls: row.try_get("calls")?,
            })
        })
        .collect()
}

pub(super) async fn busiest(
    pool: &SqlitePool,
    query: &UsageQuery,
    limit: u32,
) -> Result<Vec<KeyTotals>, StoreError> {
    let mut qb = QueryBuilder::<Sqlite>::new("");
    sql::push_busiest(&mut qb, query, limit, micros);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(sql::key_totals).collect()
}

/// One write transaction (SQLite has a single writer), so the fold and the
/// delete see the same rows.
pub(super) async fn roll_up(
    pool: &SqlitePool,
    minutes_before: DateTime<Utc>,
    hours_before: DateTime<Utc>,
) -> Result<RolledUp, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(
        "INSERT INTO usage_hour (key_id, project, hour, outcome, calls) \
         SELECT key_id, project, (minute / ?1) * ?1, outcome, sum(calls) \
         FROM usage_minute WHERE minute < ?2 GROUP BY 1, 2, 3, 4 \
         ON CONFLICT (key_id, hour, outcome) DO UPDATE SET calls = usage_hour.calls + excluded.calls",
    )
    .bind(MICROS_PER_HOUR)
    .bind(micros(minutes_before))
    .execute(&mut *tx)
    .await?;
    let minutes = sqlx::query("DELETE FROM usage_minute WHERE minute < ?")
        .bind(micros(minutes_before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let pruned = sqlx::query("DELETE FROM usage_hour WHERE hour < ?")
        .bind(micros(hours_before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(RolledUp {
        minutes,
        hours_pruned: pruned,
    })
}
