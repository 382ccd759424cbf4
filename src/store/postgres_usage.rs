//! Usage rows on Postgres: batched upserts, bucketed reads, the roll-up.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, postgres::PgConnection};

use super::{KeyTotals, RolledUp, StoreError, UsageBucket, UsageCount, UsageQuery, sql};

/// One statement per batch: arrays bound once, unnested server-side.
///
/// Replicas flush the same minute rows and the same keys at the same time
/// (all of them at a rolling stop), so each flush takes its row locks in one
/// fixed order: minute rows by (key, minute, outcome), then keys by id. Two
/// flushes then wait on each other instead of deadlocking.
pub(super) async fn record(
    pool: &PgPool,
    named: bool,
    counts: &[UsageCount],
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(counts.len());
    let mut projects = Vec::with_capacity(counts.len());
    let mut minutes = Vec::with_capacity(counts.len());
    let mut outcomes = Vec::with_capacity(counts.len());
    let mut calls = Vec::with_capacity(counts.len());
    for count in counts {
        ids.push(count.key_id.as_str());
        projects.push(count.project.as_str());
        minutes.push(count.minute);
        outcomes.push(count.outcome);
        calls.push(count.calls);
    }
    let (used_ids, used_at) = super::usage::last_allowed(counts);
    let used_ids: Vec<&str> = used_ids.iter().map(|id| id.as_str()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO usage_minute (key_id, project, minute, outcome, calls) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int8[]) \
         ORDER BY 1, 3, 4 \
         ON CONFLICT (key_id, minute, outcome) DO UPDATE SET calls = usage_minute.calls + EXCLUDED.calls",
    )
    .bind(&ids)
    .bind(&projects)
    .bind(&minutes)
    .bind(&outcomes)
    .bind(&calls)
    .persistent(named)
    .execute(&mut *tx)
    .await?;
    if !used_ids.is_empty() {
        // An UPDATE … FROM locks rows in whatever order its join plan
        // visits them; lock them in id order first.
        sqlx::query("SELECT 1 FROM keys WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&used_ids)
            .persistent(named)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE keys SET last_used_at = GREATEST(keys.last_used_at, u.at) \
             FROM UNNEST($1::text[], $2::timestamptz[]) AS u(id, at) WHERE keys.id = u.id",
        )
        .bind(&used_ids)
        .bind(&used_at)
        .persistent(named)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn series(
    conn: &mut PgConnection,
    named: bool,
    query: &UsageQuery,
    bucket_seconds: i64,
) -> Result<Vec<UsageBucket>, StoreError> {
    let mut qb =
        QueryBuilder::<Postgres>::new("SELECT to_timestamp((floor(extract(epoch FROM t) / ");
    qb.push_bind(bucket_seconds)
        .push(") * ")
        .push_bind(bucket_seconds)
        .push(")::float8) AS bucket, outcome, sum(calls)::int8 AS calls FROM ");
    sql::push_usage_rows(&mut qb, query, |t| t);
    qb.push(" GROUP BY 1, 2 ORDER BY 1, 2");
    let rows = qb.build().persistent(named).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            Ok(UsageBucket {
                start: row.try_get::<DateTime<Utc>, _>("bucket")?,
                outcome: row.try_get("outcome")?,
                calls: row.try_get("calls")?,
            })
        })
        .collect()
}

pub(super) async fn busiest(
    conn: &mut PgConnection,
    named: bool,
    query: &UsageQuery,
    limit: u32,
) -> Result<Vec<KeyTotals>, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new("");
    sql::push_busiest(&mut qb, query, limit, |t| t);
    let rows = qb.build().persistent(named).fetch_all(&mut *conn).await?;
    rows.iter().map(sql::key_totals).collect()
}

/// The DELETE … RETURNING feeds the INSERT in one statement: a replica
/// running the same roll-up at the same time waits on the deleted rows'
/// locks and then finds them gone, so no minute is counted twice.
pub(super) async fn roll_up(
    pool: &PgPool,
    named: bool,
    minutes_before: DateTime<Utc>,
    hours_before: DateTime<Utc>,
) -> Result<RolledUp, StoreError> {
    let mut tx = pool.begin().await?;
    let minutes: i64 = sqlx::query_scalar(
        "WITH moved AS (DELETE FROM usage_minute WHERE minute < $1 \
                        RETURNING key_id, project, minute, outcome, calls), \
              folded AS (INSERT INTO usage_hour (key_id, project, hour, outcome, calls) \
                         SELECT key_id, project, \
                                to_timestamp((floor(extract(epoch FROM minute) / 3600) * 3600)::float8), \
                                outcome, sum(calls) \
                         FROM moved GROUP BY 1, 2, 3, 4 \
                         ON CONFLICT (key_id, hour, outcome) \
                         DO UPDATE SET calls = usage_hour.calls + EXCLUDED.calls) \
         SELECT count(*) FROM moved",
    )
    .bind(minutes_before)
    .persistent(named)
    .fetch_one(&mut *tx)
    .await?;
    let pruned = sqlx::query("DELETE FROM usage_hour WHERE hour < $1")
        .bind(hours_before)
        .persistent(named)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(RolledUp {
        minutes: minutes as u64,
        hours_pruned: pruned,
    })
}
