//! How a Postgres `keys` row becomes a [`StoredKey`]; shared by the pool's
//! reads and the transaction's.

use std::collections::BTreeMap;

use sqlx::{Row, postgres::PgRow, types::Json};

use super::super::{StoreError, StoredKey, json_opt, parse_cidrs};
use crate::key::{Digest, KeyId};

pub(super) fn key_from_row(row: &PgRow) -> Result<StoredKey, StoreError> {
    let digest: Vec<u8> = row.try_get("digest")?;
    Ok(StoredKey {
        id: KeyId::from_trusted(row.try_get("id")?),
        project: row.try_get("project")?,
        label: row.try_get("label")?,
        digest: Digest::from_slice(&digest)
            .ok_or_else(|| StoreError::Other("stored digest is not 32 bytes".to_owned()))?,
        hint: row.try_get("hint")?,
        scopes: row.try_get("scopes")?,
        metadata: row
            .try_get::<Json<BTreeMap<String, String>>, _>("metadata")?
            .0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoke_reason: row.try_get("revoke_reason")?,
        replaced_by: row
            .try_get::<Option<String>, _>("replaced_by")?
            .map(KeyId::from_trusted),
        replaces: row
            .try_get::<Option<String>, _>("replaces")?
            .map(KeyId::from_trusted),
        rate_limit: json_opt(row.try_get("rate_limit")?),
        quota: json_opt(row.try_get("quota")?),
        allowed_cidrs: parse_cidrs(row.try_get("allowed_cidrs")?)?,
        last_used_at: row.try_get("last_used_at")?,
    })
}
