//! SQL both engines share: the list and audit filters, generic over the
//! engine and over how it stores time (TIMESTAMPTZ or integer microseconds).

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::{
    AuditQuery, KeyStatus, KeyTotals, ListQuery, StoreError, UsageOwner, UsageQuery, usage::ALLOWED,
};
use crate::key::KeyId;

/// Appends ` AND …` conditions for `query`, evaluating status at `now`.
pub(super) fn push_list_filters<'a, DB, T>(qb: &mut QueryBuilder<DB>, query: &'a ListQuery, now: T)
where
    DB: Database,
    T: Encode<'a, DB> + Type<DB> + Copy,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    if let Some(project) = &query.project {
        qb.push(" AND project = ").push_bind(project.as_str());
    }
    if let Some(label) = &query.label {
        qb.push(" AND label = ").push_bind(label.as_str());
    }
    if let Some(before) = &query.before {
        qb.push(" AND id < ").push_bind(before.as_str());
    }
    // The same precedence as KeyStatus::at: revoked, then expired, then
    // rotating, then active.
    match query.status {
        None => {}
        Some(KeyStatus::Revoked) => {
            qb.push(" AND revoked_at <= ").push_bind(now);
        }
        Some(KeyStatus::Expired) => {
            qb.push(" AND (revoked_at IS NULL OR revoked_at > ")
                .push_bind(now);
            qb.push(") AND expires_at <= ").push_bind(now);
        }
        Some(KeyStatus::Rotating) => {
            qb.push(" AND revoked_at > ").push_bind(now);
            qb.push(" AND (expires_at IS NULL OR expires_at > ")
                .push_bind(now);
            qb.push(")");
        }
        Some(KeyStatus::Active) => {
            qb.push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
                .push_bind(now);
            qb.push(")");
        }
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(query.limit));
}

/// Appends ` AND …` conditions for an audit query; `time` converts the
/// query's instants to the engine's time type.
pub(super) fn push_audit_filters<'a, DB, T>(
    qb: &mut QueryBuilder<DB>,
    query: &'a AuditQuery,
    time: impl Fn(chrono::DateTime<chrono::Utc>) -> T,
) where
    DB: Database,
    T: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    if let Some(target) = &query.target {
        qb.push(" AND target_key_id = ").push_bind(target.as_str());
    }
    if let Some(project) = &query.project {
        qb.push(" AND project = ").push_bind(project.as_str());
    }
    if let Some(action) = query.action {
        qb.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(since) = query.since {
        qb.push(" AND at >= ").push_bind(time(since));
    }
    if let Some(until) = query.until {
        qb.push(" AND at < ").push_bind(time(until));
    }
    if let Some(before) = query.before {
        qb.push(" AND id < ").push_bind(before);
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(query.limit));
}

/// `(SELECT t, key_id, outcome, calls …) u`: the minute and hour usage rows
/// of the query's owner within its range, as one derived table.
pub(super) fn push_usage_rows<'a, DB, T>(
    qb: &mut QueryBuilder<DB>,
    query: &'a UsageQuery,
    time: impl Fn(chrono::DateTime<chrono::Utc>) -> T,
) where
    DB: Database,
    T: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    qb.push("(");
    for (i, (table, column)) in [("usage_minute", "minute"), ("usage_hour", "hour")]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push(format!(
            "SELECT {column} AS t, key_id, outcome, calls FROM {table} WHERE "
        ));
        match &query.owner {
            UsageOwner::Key(id) => qb.push("key_id = ").push_bind(id.as_str()),
            UsageOwner::Project(project) => qb.push("project = ").push_bind(project.as_str()),
        };
        qb.push(format!(" AND {column} >= "))
            .push_bind(time(query.since))
            .push(format!(" AND {column} < "))
            .push_bind(time(query.until));
    }
    qb.push(") u");
}

/// The busiest keys of a usage query, for [`key_totals`]: plain SQL both
/// engines run (CASE rather than FILTER, CAST rather than `::`).
pub(super) fn push_busiest<'a, DB, T>(
    qb: &mut QueryBuilder<DB>,
    query: &'a UsageQuery,
    limit: u32,
    time: impl Fn(chrono::DateTime<chrono::Utc>) -> T,
) where
    DB: Database,
    T: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    qb.push(
        "SELECT u.key_id, COALESCE(MAX(k.label), '') AS label, \
         CAST(COALESCE(SUM(CASE WHEN u.outcome = ",
    )
    .push_bind(ALLOWED)
    .push(" THEN u.calls END), 0) AS BIGINT) AS allowed, CAST(COALESCE(SUM(CASE WHEN u.outcome <> ")
    .push_bind(ALLOWED)
    .push(" THEN u.calls END), 0) AS BIGINT) AS denied FROM ");
    push_usage_rows(qb, query, time);
    qb.push(
        " LEFT JOIN keys k ON k.id = u.key_id GROUP BY u.key_id \
         ORDER BY SUM(u.calls) DESC, u.key_id LIMIT ",
    )
    .push_bind(i64::from(limit));
}

/// A row of [`push_busiest`].
pub(super) fn key_totals<R>(row: &R) -> Result<KeyTotals, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(KeyTotals {
        key_id: KeyId::from_trusted(row.try_get("key_id")?),
        label: row.try_get("label")?,
        allowed: row.try_get("allowed")?,
        denied: row.try_get("denied")?,
    })
}
