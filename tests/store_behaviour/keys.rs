//! Inserting and finding keys, and the rule that a live label is held once.

use chrono::Duration;
use keyward::{
    key::{Digest, KeyId},
    store::{AuditAction, KeyStatus, NewKey, StoreError},
};

use super::fixtures::{audit_count, by, event, futures_join_all, insert, new_key, now};
use crate::common::TestDb;

async fn insert_get_and_find(db: TestDb) {
    let store = db.store().await;
    let key = new_key("acme", "ci");
    insert(&store, &key).await;

    let stored = store.get(&key.id).await.unwrap().unwrap();
    assert_eq!(stored, key.to_stored());
    assert_eq!(stored.status(now()), KeyStatus::Active);

    let record = store.find_by_digest(&key.digest).await.unwrap().unwrap();
    assert_eq!(record.id, key.id);
    assert_eq!(&*record.project, "acme");
    assert_eq!(record.scopes.len(), 2);
    assert_eq!(record.limits.as_ref().and_then(|l| l.rate), key.rate_limit);
    assert_eq!(record.cidrs.len(), 1);
    assert!(
        store
            .find_by_digest(&Digest::from_bytes([0; 32]))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.get(&KeyId::generate()).await.unwrap().is_none());

    // Many digests at once: only the known ones come back, each with its
    // digest and the same record as the single read.
    let other = new_key("acme", "other");
    insert(&store, &other).await;
    let unknown = Digest::from_bytes([0; 32]);
    let mut found = store
        .find_by_digests(&[unknown, key.digest, other.digest, key.digest])
        .await
        .unwrap();
    found.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    found.dedup_by(|a, b| a.0 == b.0);
    let ids: Vec<_> = found.iter().map(|(d, r)| (*d, r.id.clone())).collect();
    assert_eq!(
        ids,
        [
            (key.digest, key.id.clone()),
            (other.digest, other.id.clone())
        ]
    );
    assert_eq!(found[0].1, record);
    assert!(store.find_by_digests(&[]).await.unwrap().is_empty());

    assert_eq!(audit_count(&store, &key.id).await, 1);
    // Migrating an up-to-date schema is harmless.
    store.migrate().await.unwrap();
}
on_both_stores!(insert_get_and_find_works, insert_get_and_find);

async fn labels_are_unique_among_live_keys(db: TestDb) {
    let store = db.store().await;
    let first = new_key("acme", "ci");
    insert(&store, &first).await;

    let clash = new_key("acme", "ci");
    let err = store
        .insert(&clash, &event(AuditAction::Issue, &clash))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LabelTaken { .. }), "{err:?}");
    assert!(
        store.get(&clash.id).await.unwrap().is_none(),
        "nothing half-written"
    );
    assert_eq!(
        audit_count(&store, &clash.id).await,
        0,
        "no audit event for a failed write"
    );

    insert(&store, &new_key("other", "ci")).await; // other projects are separate

    let at = now();
    store
        .revoke(&first.id, at, "done", &by(AuditAction::Revoke, "acme"))
        .await
        .unwrap();
    insert(&store, &clash).await; // a revoked key no longer holds its label
}
on_both_stores!(live_labels_are_unique, labels_are_unique_among_live_keys);

async fn expired_keys_release_their_label(db: TestDb) {
    let store = db.store().await;
    let mut old = new_key("acme", "ci");
    old.created_at = now() - Duration::hours(2);
    old.expires_at = Some(now() - Duration::hours(1));
    insert(&store, &old).await;
    assert_eq!(
        store.get(&old.id).await.unwrap().unwrap().status(now()),
        KeyStatus::Expired
    );
    insert(&store, &new_key("acme", "ci")).await;
}
on_both_stores!(expired_labels_are_free, expired_keys_release_their_label);

async fn concurrent_issues_of_one_label_let_one_win(db: TestDb) {
    let store = db.store().await;
    let keys: Vec<NewKey> = (0..8).map(|_| new_key("acme", "race")).collect();
    let results = futures_join_all(keys.iter().map(|k| {
        let store = store.clone();
        let k = k.clone();
        async move { store.insert(&k, &event(AuditAction::Issue, &k)).await }
    }))
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(StoreError::LabelTaken { .. })))
    );
}
on_both_stores!(label_race, concurrent_issues_of_one_label_let_one_win);
