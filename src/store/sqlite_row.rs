//! How SQLite columns become values: times as integer microseconds since
//! the epoch, scopes and metadata as JSON text. Shared by the key and the
//! usage queries of the SQLite engine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{Row, sqlite::SqliteRow, types::Json};

use super::{StoreError, StoredKey, json_opt, parse_cidrs};
use crate::key::{Digest, KeyId};

pub(super) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub(super) fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Other(format!("stored time {micros} is out of range")))
}

pub(super) fn time_opt(micros: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    micros.map(time).transpose()
}

pub(super) fn key_from_row(row: &SqliteRow) -> Result<StoredKey, StoreError> {
    let digest: Vec<u8> = row.try_get("digest")?;
    Ok(StoredKey {
        id: KeyId::from_trusted(row.try_get("id")?),
        project: row.try_get("project")?,
        label: row.try_get("label")?,
        digest: Digest::from_slice(&digest)
            .ok_or_else(|| StoreError::Other("stored digest is not 32 bytes".to_owned()))?,
        hint: row.try_get("hint")?,
        scopes: row.try_get::<Json<Vec<String>>, _>("scopes")?.0,
        metadata: row
            .try_get::<Json<BTreeMap<String, String>>, _>("metadata")?
            .0,
        created_at: time(row.try_get("created_at")?)?,
        updated_at: time(row.try_get("updated_at")?)?,
        expires_at: time_opt(row.try_get("expires_at")?)?,
        revoked_at: time_opt(row.try_get("revoked_at")?)?,
        revoke_reason: row.try_get("revoke_reason")?,
        replaced_by: row
            .try_get::<Option<String>, _>("replaced_by")?
            .map(KeyId::from_trusted),
        replaces: row
            .try_get::<Option<String>, _>("replaces")?
            .map(KeyId::from_trusted),
        rate_limit: json_opt(row.try_get("rate_limit")?),
        quota: json_opt(row.try_get("quota")?),
        allowed_cidrs: parse_cidrs(row.try_get::<Json<Vec<String>>, _>("allowed_cidrs")?.0)?,
        last_used_at: time_opt(row.try_get("last_used_at")?)?,
    })
}
