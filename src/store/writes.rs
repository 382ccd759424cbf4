//! Every admin write, once for both engines: each engine supplies the
//! transaction primitives ([`WriteTx`]); the order of steps and the state
//! rules live here, so Postgres and SQLite cannot differ.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AuditEvent, KeyChanges, KeyStatus, NewKey, Rotated, StoreError, StoredKey, Successor, WriteBy,
};
use crate::key::{Digest, KeyId};

/// One open write transaction. Dropping it without `commit` rolls back.
#[async_trait]
pub(super) trait WriteTx: Send + Sized {
    /// Reads a key and keeps it locked until the transaction ends.
    async fn lock(&mut self, id: &KeyId) -> Result<StoredKey, StoreError>;
    /// Lets a new holder take a label whose live holder has since expired.
    async fn release_expired_label(
        &mut self,
        project: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Inserts a key holding its label; a taken label is `LabelTaken`.
    async fn insert(&mut self, key: &NewKey) -> Result<(), StoreError>;
    /// Writes back every mutable column of a locked key, holding its label
    /// only while the key is active at `now`.
    async fn save(&mut self, key: &StoredKey, now: DateTime<Utc>) -> Result<(), StoreError>;
    async fn audit(&mut self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Records in the outbox that the key with `digest` changed at `at`.
    /// Called last before the commit: on Postgres it takes the outbox lock.
    async fn invalidate(&mut self, digest: &Digest, at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn commit(self) -> Result<(), StoreError>;
    async fn rollback(self) -> Result<(), StoreError>;
}

pub(super) async fn insert(
    tx: impl WriteTx,
    key: &NewKey,
    audit: &AuditEvent,
) -> Result<StoredKey, StoreError> {
    in_transaction(tx, async |tx| {
        tx.release_expired_label(&key.project, &key.label, key.created_at)
            .await?;
        tx.insert(key).await?;
        tx.audit(audit).await?;
        Ok(Some(key.to_stored()))
    })
    .await
}

pub(super) async fn revoke(
    tx: impl WriteTx,
    id: &KeyId,
    at: DateTime<Utc>,
    reason: &str,
    by: &WriteBy,
) -> Result<StoredKey, StoreError> {
    in_transaction(tx, async |tx| {
        let mut key = lock_for(tx, id, by).await?;
        if !mark_revoked(&mut key, at, reason) {
            return Ok(Err(key));
        }
        tx.save(&key, at).await?;
        tx.audit(&by.audit.for_key(&key)).await?;
        tx.invalidate(&key.digest, at).await?;
        Ok(Ok(key))
    })
    .await
}

pub(super) async fn rotate(
    tx: impl WriteTx,
    old: &KeyId,
    now: DateTime<Utc>,
    old_revoked_at: DateTime<Utc>,
    successor: &mut Successor<'_>,
    by: &WriteBy,
) -> Result<Rotated, StoreError> {
    in_transaction(tx, async |tx| {
        let mut previous = lock_for(tx, old, by).await?;
        check_rotatable(&previous, now)?;
        let new = successor(&previous);
        retire(&mut previous, &new.id, old_revoked_at, now);
        // The old key gives up its label before its successor takes it.
        tx.save(&previous, now).await?;
        tx.insert(&new).await?;
        tx.audit(&by.audit.for_key(&previous)).await?;
        tx.invalidate(&previous.digest, now).await?;
        Ok(Some(Rotated {
            new: new.to_stored(),
            old: previous,
        }))
    })
    .await
}

pub(super) async fn update(
    tx: impl WriteTx,
    id: &KeyId,
    changes: &KeyChanges,
    now: DateTime<Utc>,
    by: &WriteBy,
) -> Result<StoredKey, StoreError> {
    in_transaction(tx, async |tx| {
        let mut key = lock_for(tx, id, by).await?;
        check_updatable(&key, now)?;
        changes.apply(&mut key, now);
        if key.status(now).holds_label() {
            tx.release_expired_label(&key.project, &key.label, now)
                .await?;
        }
        tx.save(&key, now).await?;
        tx.audit(&by.audit.for_key(&key)).await?;
        tx.invalidate(&key.digest, now).await?;
        Ok(Some(key))
    })
    .await
}

/// Locks a key for `by`. Every decision of a write is taken on this row:
/// one read before the lock could be overtaken by a concurrent write.
async fn lock_for(
    tx: &mut impl WriteTx,
    id: &KeyId,
    by: &WriteBy,
) -> Result<StoredKey, StoreError> {
    let key = tx.lock(id).await?;
    if by.may_write(&key) {
        Ok(key)
    } else {
        Err(StoreError::NotFound(id.clone()))
    }
}

/// What a write body decided: commit and return, or return without writing.
trait Outcome<T> {
    fn into_parts(self) -> (bool, T);
}

impl<T> Outcome<T> for Option<T> {
    fn into_parts(self) -> (bool, T) {
        (true, self.expect("write bodies that commit return Some"))
    }
}

/// `Ok` commits, `Err` returns unchanged without writing.
impl<T> Outcome<T> for Result<T, T> {
    fn into_parts(self) -> (bool, T) {
        match self {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        }
    }
}

/// Runs `body`, then commits or rolls back explicitly. Relying on drop would
/// leave the rollback queued on a pooled connection, its row locks held
/// until that connection happens to be used again.
async fn in_transaction<Tx, T, O>(
    mut tx: Tx,
    body: impl AsyncFnOnce(&mut Tx) -> Result<O, StoreError>,
) -> Result<T, StoreError>
where
    Tx: WriteTx,
    O: Outcome<T>,
{
    match body(&mut tx).await {
        Ok(outcome) => {
            let (commit, value) = outcome.into_parts();
            if commit {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(value)
        }
        Err(error) => {
            // The original error matters more than a failed rollback.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Only an active key can be rotated: a rotating key already has a successor,
/// and a revoked or expired key has nothing left to hand over.
fn check_rotatable(key: &StoredKey, now: DateTime<Utc>) -> Result<(), StoreError> {
    match key.status(now) {
        KeyStatus::Active => Ok(()),
        KeyStatus::Rotating => Err(StoreError::Conflict(format!(
            "key {} was already rotated; rotate its successor {}",
            key.id,
            key.replaced_by.as_ref().map_or("", |id| id.as_str())
        ))),
        KeyStatus::Revoked => Err(StoreError::Conflict(format!("key {} is revoked", key.id))),
        KeyStatus::Expired => Err(StoreError::Conflict(format!(
            "key {} has expired; extend it with UpdateKey or issue a new key",
            key.id
        ))),
    }
}

/// Active and expired keys can be changed (extending an expired key's expiry
/// brings it back); revoked and rotating ones are frozen.
fn check_updatable(key: &StoredKey, now: DateTime<Utc>) -> Result<(), StoreError> {
    match key.status(now) {
        KeyStatus::Active | KeyStatus::Expired => Ok(()),
        KeyStatus::Rotating => Err(StoreError::Conflict(format!(
            "key {} is being rotated; update its successor instead",
            key.id
        ))),
        KeyStatus::Revoked => Err(StoreError::Conflict(format!("key {} is revoked", key.id))),
    }
}

/// Marks `key` revoked at `at`; `false` if it already was (nothing to write).
fn mark_revoked(key: &mut StoredKey, at: DateTime<Utc>, reason: &str) -> bool {
    if key.status(at) == KeyStatus::Revoked {
        return false;
    }
    key.revoked_at = Some(at);
    key.revoke_reason = Some(reason.to_owned());
    key.updated_at = at;
    true
}

/// Marks `old` as replaced by `new_id`, working until `until`.
fn retire(old: &mut StoredKey, new_id: &KeyId, until: DateTime<Utc>, now: DateTime<Utc>) {
    old.revoked_at = Some(until);
    old.revoke_reason = Some("rotated".to_owned());
    old.replaced_by = Some(new_id.clone());
    old.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn key() -> StoredKey {
        let now = Utc::now();
        StoredKey {
            id: KeyId::generate(),
            project: "p".into(),
            label: "l".into(),
            digest: Digest::from_bytes([0; 32]),
            hint: "p_...abcd".into(),
            scopes: vec![],
            metadata: Default::default(),
            created_at: now,
            updated_at: now,
            expires_at: None,
            revoked_at: None,
            revoke_reason: None,
            replaced_by: None,
            replaces: None,
            rate_limit: None,
            quota: None,
            allowed_cidrs: Vec::new(),
            last_used_at: None,
        }
    }

    #[test]
    fn only_active_keys_rotate() {
        let now = Utc::now();
        let mut k = key();
        assert!(check_rotatable(&k, now).is_ok());
        k.revoked_at = Some(now + Duration::hours(1));
        assert!(matches!(
            check_rotatable(&k, now),
            Err(StoreError::Conflict(_))
        ));
        k.revoked_at = Some(now - Duration::hours(1));
        assert!(check_rotatable(&k, now).is_err());
        k.revoked_at = None;
        k.expires_at = Some(now - Duration::hours(1));
        assert!(check_rotatable(&k, now).is_err());
    }

    #[test]
    fn expired_keys_can_be_updated_but_not_rotating_or_revoked_ones() {
        let now = Utc::now();
        let mut k = key();
        k.expires_at = Some(now - Duration::hours(1));
        assert!(check_updatable(&k, now).is_ok());
        k.revoked_at = Some(now + Duration::hours(1));
        k.expires_at = None;
        assert!(check_updatable(&k, now).is_err());
        k.revoked_at = Some(now);
        assert!(check_updatable(&k, now).is_err());
    }

    #[test]
    fn revoking_twice_changes_nothing_the_second_time() {
        let now = Utc::now();
        let mut k = key();
        assert!(mark_revoked(&mut k, now, "leaked"));
        assert_eq!(k.revoked_at, Some(now));
        assert!(!mark_revoked(&mut k, now + Duration::seconds(1), "again"));
        assert_eq!(k.revoke_reason.as_deref(), Some("leaked"));
    }

    #[test]
    fn revoking_a_rotating_key_ends_its_grace_now() {
        let now = Utc::now();
        let mut k = key();
        retire(&mut k, &KeyId::generate(), now + Duration::hours(1), now);
        assert!(mark_revoked(&mut k, now, "leaked"));
        assert_eq!(k.revoked_at, Some(now));
    }
}
