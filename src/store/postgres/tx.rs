//! Write transactions on Postgres: the primitives `store::writes` runs
//! every admin write with.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction, types::Json};

use super::super::{
    AuditEvent, NewKey, StoreError, StoredKey, cidr_texts, label_conflict, writes::WriteTx,
};
use super::row::key_from_row;
use crate::key::{Digest, KeyId};

/// Row locks (`SELECT … FOR UPDATE`) serialise concurrent writes to one key.
pub(super) struct PgTx {
    pub(super) tx: Transaction<'static, Postgres>,
    pub(super) named: bool,
}

#[async_trait]
impl WriteTx for PgTx {
    async fn lock(&mut self, id: &KeyId) -> Result<StoredKey, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE id = $1 FOR UPDATE"
        ))
        .bind(id.as_str())
        .persistent(self.named)
        .fetch_optional(&mut *self.tx)
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
            "UPDATE keys SET label_held = FALSE \
             WHERE project = $1 AND label = $2 AND label_held AND expires_at <= $3",
        )
        .bind(project)
        .bind(label)
        .bind(now)
        .persistent(self.named)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn insert(&mut self, key: &NewKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO keys (id, project, label, label_held, digest, hint, scopes, metadata, \
             created_at, updated_at, expires_at, replaces, rate_limit, quota, allowed_cidrs) \
             VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13)",
        )
        .bind(key.id.as_str())
        .bind(&key.project)
        .bind(&key.label)
        .bind(key.digest.as_bytes().as_slice())
        .bind(&key.hint)
        .bind(&key.scopes)
        .bind(Json(&key.metadata))
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.replaces.as_ref().map(KeyId::as_str))
        .bind(key.rate_limit.map(Json))
        .bind(key.quota.map(Json))
        .bind(cidr_texts(&key.allowed_cidrs))
        .persistent(self.named)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| label_conflict(e, &key.project, &key.label))?;
        Ok(())
    }

    async fn save(&mut self, key: &StoredKey, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE keys SET label = $2, label_held = $3, scopes = $4, metadata = $5, \
             updated_at = $6, expires_at = $7, revoked_at = $8, revoke_reason = $9, \
             replaced_by = $10, rate_limit = $11, quota = $12, allowed_cidrs = $13 WHERE id = $1",
        )
        .bind(key.id.as_str())
        .bind(&key.label)
        .bind(key.status(now).holds_label())
        .bind(&key.scopes)
        .bind(Json(&key.metadata))
        .bind(key.updated_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(&key.revoke_reason)
        .bind(key.replaced_by.as_ref().map(KeyId::as_str))
        .bind(key.rate_limit.map(Json))
        .bind(key.quota.map(Json))
        .bind(cidr_texts(&key.allowed_cidrs))
        .persistent(self.named)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| label_conflict(e, &key.project, &key.label))?;
        Ok(())
    }

    async fn audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor_key_id, action, project, target_key_id, source, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(event.at)
        .bind(event.actor.as_ref().map(KeyId::as_str))
        .bind(event.action.as_str())
        .bind(&event.project)
        .bind(event.target.as_str())
        .bind(&event.source)
        .bind(Json(&event.details))
        .persistent(self.named)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn invalidate(&mut self, digest: &Digest, at: DateTime<Utc>) -> Result<(), StoreError> {
        super::super::outbox::pg_record(&mut self.tx, self.named, digest, at).await
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}
