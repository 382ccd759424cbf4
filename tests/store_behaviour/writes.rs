//! Revoke, rotate and update: each write atomic, idempotent where it says so,
//! and decided on the row it locked.

use chrono::Duration;
use keyward::{
    key::KeyId,
    limit::{Quota, QuotaPeriod},
    store::{AuditAction, AuditQuery, KeyChanges, KeyStatus, StoreError, StoredKey},
};

use super::fixtures::{audit_count, by, event, insert, new_key, now};
use crate::common::TestDb;

async fn revoke_is_idempotent(db: TestDb) {
    let store = db.store().await;
    let key = new_key("acme", "ci");
    insert(&store, &key).await;
    let at = now();
    let revoked = store
        .revoke(&key.id, at, "leaked", &by(AuditAction::Revoke, "acme"))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(revoked.status(at), KeyStatus::Revoked);
    assert_eq!(
        store
            .find_by_digest(&key.digest)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at)
    );

    let again = store
        .revoke(
            &key.id,
            at + Duration::seconds(1),
            "again",
            &by(AuditAction::Revoke, "acme"),
        )
        .await
        .unwrap();
    assert_eq!(again.revoke_reason.as_deref(), Some("leaked"));
    assert_eq!(again.revoked_at, Some(at));
    assert_eq!(audit_count(&store, &key.id).await, 2, "issue + one revoke");

    let missing = KeyId::generate();
    let err = store
        .revoke(&missing, at, "x", &by(AuditAction::Revoke, "acme"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
}
on_both_stores!(revoke_twice, revoke_is_idempotent);

async fn rotation_hands_over_the_label(db: TestDb) {
    let store = db.store().await;
    let old = new_key("acme", "ci");
    insert(&store, &old).await;
    let mut successor = new_key("acme", "ci");
    successor.replaces = Some(old.id.clone());
    let until = now() + Duration::hours(1);
    let rotated = store
        .rotate(
            &old.id,
            successor.created_at,
            until,
            &mut |_: &StoredKey| successor.clone(),
            &by(AuditAction::Rotate, "acme"),
        )
        .await
        .unwrap();
    assert_eq!(rotated.old.revoked_at, Some(until));
    assert_eq!(rotated.old.replaced_by.as_ref(), Some(&successor.id));
    assert_eq!(rotated.old.status(now()), KeyStatus::Rotating);
    assert_eq!(rotated.new.replaces.as_ref(), Some(&old.id));
    assert_eq!(store.get(&old.id).await.unwrap().unwrap(), rotated.old);
    assert_eq!(
        store.get(&successor.id).await.unwrap().unwrap(),
        rotated.new
    );

    // The successor holds the label; the rotating key does not.
    let clash = new_key("acme", "ci");
    assert!(matches!(
        store
            .insert(&clash, &event(AuditAction::Issue, &clash))
            .await,
        Err(StoreError::LabelTaken { .. })
    ));

    // A rotating key cannot be rotated again or updated.
    let again = new_key("acme", "ci");
    let err = store
        .rotate(
            &old.id,
            again.created_at,
            until,
            &mut |_: &StoredKey| again.clone(),
            &by(AuditAction::Rotate, "acme"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        store.get(&again.id).await.unwrap().is_none(),
        "nothing half-written"
    );
    let err = store
        .update(
            &old.id,
            &KeyChanges::default(),
            now(),
            &by(AuditAction::Update, "acme"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));

    // Revoking a rotating key ends its grace at once.
    let at = now();
    let revoked = store
        .revoke(&old.id, at, "leaked", &by(AuditAction::Revoke, "acme"))
        .await
        .unwrap();
    assert_eq!(revoked.status(at), KeyStatus::Revoked);
}
on_both_stores!(rotation, rotation_hands_over_the_label);

/// Every write decides on the row it locked: who may write it, and what a
/// rotation copies into the successor.
async fn writes_decide_on_the_locked_row(db: TestDb) {
    let store = db.store().await;
    let key = new_key("acme", "ci");
    insert(&store, &key).await;

    // Another project's admin gets what an unknown id gets; nothing is written.
    let outsider = |action| by(action, "globex");
    let err = store
        .revoke(&key.id, now(), "x", &outsider(AuditAction::Revoke))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref id) if *id == key.id),
        "{err:?}"
    );
    let changes = KeyChanges {
        scopes: Some(vec![]),
        ..Default::default()
    };
    let err = store
        .update(&key.id, &changes, now(), &outsider(AuditAction::Update))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let mut built = false;
    let err = store
        .rotate(
            &key.id,
            now(),
            now(),
            &mut |_: &StoredKey| {
                built = true;
                new_key("acme", "ci")
            },
            &outsider(AuditAction::Rotate),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(!built, "no successor for a key the writer may not touch");
    assert_eq!(
        store.get(&key.id).await.unwrap().unwrap().status(now()),
        KeyStatus::Active
    );
    assert_eq!(audit_count(&store, &key.id).await, 1, "only the issue");

    // The successor is built from the row as the last committed write left it.
    let cut = KeyChanges {
        scopes: Some(vec!["orders:read".into()]),
        ..Default::default()
    };
    store
        .update(&key.id, &cut, now(), &by(AuditAction::Update, "acme"))
        .await
        .unwrap();
    let mut seen = None;
    let rotated = store
        .rotate(
            &key.id,
            now(),
            now() + Duration::hours(1),
            &mut |old: &StoredKey| {
                seen = Some(old.scopes.clone());
                let mut next = new_key(&old.project, &old.label);
                next.scopes = old.scopes.clone();
                next.replaces = Some(old.id.clone());
                next
            },
            &by(AuditAction::Rotate, "acme"),
        )
        .await
        .unwrap();
    assert_eq!(seen, Some(vec!["orders:read".to_string()]));
    assert_eq!(rotated.new.scopes, ["orders:read"]);
    let events = store
        .list_audit(&AuditQuery {
            target: Some(key.id.clone()),
            action: Some(AuditAction::Rotate),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].project, "acme",
        "the audit event names the locked key"
    );
}
on_both_stores!(locked_row_decides, writes_decide_on_the_locked_row);

async fn updates_apply_atomically(db: TestDb) {
    let store = db.store().await;
    let key = new_key("acme", "ci");
    let other = new_key("acme", "deploy");
    insert(&store, &key).await;
    insert(&store, &other).await;

    let at = now();
    let quota = Quota {
        limit: 5,
        period: QuotaPeriod::Month,
        refill_amount: 0,
        refill_interval: std::time::Duration::ZERO,
    };
    let changes = KeyChanges {
        label: Some("ci-2".into()),
        scopes: Some(vec!["billing:read".into()]),
        expires_at: Some(Some(at + Duration::days(1))),
        metadata: Some([("owner".to_string(), "team-b".to_string())].into()),
        rate_limit: Some(None),
        quota: Some(Some(quota)),
        allowed_cidrs: Some(vec![]),
    };
    let updated = store
        .update(&key.id, &changes, at, &by(AuditAction::Update, "acme"))
        .await
        .unwrap();
    assert_eq!(updated.label, "ci-2");
    assert_eq!(updated.scopes, vec!["billing:read".to_string()]);
    assert_eq!(updated.expires_at, Some(at + Duration::days(1)));
    assert_eq!(updated.metadata["owner"], "team-b");
    assert_eq!(updated.rate_limit, None);
    assert_eq!(updated.quota, Some(quota));
    assert!(updated.allowed_cidrs.is_empty());
    assert_eq!(updated.updated_at, at);
    assert_eq!(store.get(&key.id).await.unwrap().unwrap(), updated);
    let record = store.find_by_digest(&key.digest).await.unwrap().unwrap();
    assert_eq!(&*record.scopes[0], "billing:read");
    assert_eq!(record.limits.as_ref().and_then(|l| l.quota), Some(quota));
    assert!(record.cidrs.is_empty());

    // Taking a live label fails and changes nothing, scopes included.
    let clash = KeyChanges {
        label: Some("deploy".into()),
        scopes: Some(vec![]),
        ..Default::default()
    };
    let err = store
        .update(&key.id, &clash, now(), &by(AuditAction::Update, "acme"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LabelTaken { .. }));
    assert_eq!(store.get(&key.id).await.unwrap().unwrap(), updated);
    assert_eq!(audit_count(&store, &key.id).await, 2, "issue + one update");

    // Removing the expiry.
    let clear = KeyChanges {
        expires_at: Some(None),
        ..Default::default()
    };
    let cleared = store
        .update(&key.id, &clear, now(), &by(AuditAction::Update, "acme"))
        .await
        .unwrap();
    assert_eq!(cleared.expires_at, None);

    // Revoked keys are frozen.
    store
        .revoke(&other.id, now(), "x", &by(AuditAction::Revoke, "acme"))
        .await
        .unwrap();
    let err = store
        .update(&other.id, &clear, now(), &by(AuditAction::Update, "acme"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
}
on_both_stores!(updates, updates_apply_atomically);
