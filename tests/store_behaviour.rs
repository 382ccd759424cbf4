//! One behaviour suite for every `KeyStore` engine: each test runs against
//! SQLite and Postgres (a private schema per test).

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use keyward::{
    key::{Digest, KeyId, format},
    limit::{Quota, QuotaPeriod, RateLimit},
    store::{
        AuditAction, AuditDraft, AuditEvent, AuditQuery, KeyChanges, KeyStatus, KeyStore,
        ListQuery, NewKey, StoreError, StoredKey, WriteBy,
    },
};
use serde_json::json;

use common::TestDb;

/// Stores keep microseconds; comparing at that precision keeps the suite
/// engine-neutral.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap()
}

fn new_key(project: &str, label: &str) -> NewKey {
    let secret = format::generate(&format::prefix_for_project(project));
    NewKey {
        id: KeyId::generate(),
        project: project.into(),
        label: label.into(),
        digest: Digest::of(format::parse(secret.expose()).unwrap()),
        hint: format::hint(&secret),
        scopes: vec!["orders:read".into(), "users:*".into()],
        metadata: [("owner".to_string(), "team-a".to_string())].into(),
        created_at: now(),
        expires_at: None,
        replaces: None,
        rate_limit: Some(RateLimit {
            limit: 100,
            period: std::time::Duration::from_secs(1),
            burst: 10,
        }),
        quota: None,
        allowed_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
    }
}

fn event(action: AuditAction, key: &NewKey) -> AuditEvent {
    AuditEvent {
        at: now(),
        actor: None,
        action,
        project: key.project.clone(),
        target: key.id.clone(),
        source: "test".into(),
        details: json!({"label": key.label}),
    }
}

/// A write by an admin of `project`.
fn by(action: AuditAction, project: &str) -> WriteBy {
    WriteBy {
        project: Some(project.into()),
        audit: AuditDraft {
            at: now(),
            actor: None,
            action,
            source: "test".into(),
            details: json!({}),
        },
    }
}

async fn insert(store: &Arc<dyn KeyStore>, key: &NewKey) {
    store
        .insert(key, &event(AuditAction::Issue, key))
        .await
        .unwrap();
}

async fn audit_count(store: &Arc<dyn KeyStore>, id: &KeyId) -> usize {
    let query = AuditQuery {
        target: Some(id.clone()),
        limit: 100,
        ..Default::default()
    };
    store.list_audit(&query).await.unwrap().len()
}

fn list_query(project: &str) -> ListQuery {
    ListQuery {
        project: Some(project.into()),
        status: None,
        label: None,
        before: None,
        limit: 100,
        now: now(),
    }
}

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

async fn listing_filters_and_pages(db: TestDb) {
    let store = db.store().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let key = new_key("acme", &format!("k{i}"));
        insert(&store, &key).await;
        ids.push(key.id);
    }
    insert(&store, &new_key("other", "k0")).await;
    let mut expired = new_key("acme", "old");
    expired.expires_at = Some(now() - Duration::seconds(1));
    insert(&store, &expired).await;
    store
        .revoke(&ids[0], now(), "x", &by(AuditAction::Revoke, "acme"))
        .await
        .unwrap();
    let rotating = new_key("acme", "k1");
    store
        .rotate(
            &ids[1],
            rotating.created_at,
            now() + Duration::hours(1),
            &mut |_: &StoredKey| rotating.clone(),
            &by(AuditAction::Rotate, "acme"),
        )
        .await
        .unwrap();

    let all = store.list(&list_query("acme")).await.unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let with = |status| ListQuery {
        status: Some(status),
        ..list_query("acme")
    };
    let count = |keys: Vec<keyward::store::StoredKey>| keys.len();
    assert_eq!(
        count(store.list(&with(KeyStatus::Revoked)).await.unwrap()),
        1
    );
    assert_eq!(
        count(store.list(&with(KeyStatus::Rotating)).await.unwrap()),
        1
    );
    assert_eq!(
        count(store.list(&with(KeyStatus::Expired)).await.unwrap()),
        1
    );
    assert_eq!(
        count(store.list(&with(KeyStatus::Active)).await.unwrap()),
        4
    );

    let labelled = ListQuery {
        label: Some("k1".into()),
        ..list_query("acme")
    };
    assert_eq!(
        count(store.list(&labelled).await.unwrap()),
        2,
        "rotating k1 and its successor"
    );

    let all_projects = ListQuery {
        project: None,
        ..list_query("acme")
    };
    assert_eq!(count(store.list(&all_projects).await.unwrap()), 8);

    let first = store
        .list(&ListQuery {
            limit: 3,
            ..list_query("acme")
        })
        .await
        .unwrap();
    let rest = store
        .list(&ListQuery {
            limit: 100,
            before: Some(first[2].id.clone()),
            ..list_query("acme")
        })
        .await
        .unwrap();
    assert_eq!(first.len() + rest.len(), 7);
    assert!(rest.iter().all(|k| k.id < first[2].id));
}
on_both_stores!(listing, listing_filters_and_pages);

async fn audit_events_filter(db: TestDb) {
    let store = db.store().await;
    let key = new_key("acme", "ci");
    insert(&store, &key).await;
    store
        .revoke(&key.id, now(), "x", &by(AuditAction::Revoke, "acme"))
        .await
        .unwrap();
    insert(&store, &new_key("other", "ci")).await;

    let all = store
        .list_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let by_project = AuditQuery {
        project: Some("acme".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.list_audit(&by_project).await.unwrap().len(), 2);
    let by_action = AuditQuery {
        action: Some(AuditAction::Revoke),
        limit: 100,
        ..Default::default()
    };
    let revokes = store.list_audit(&by_action).await.unwrap();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].target, key.id.as_str());
    assert_eq!(revokes[0].source, "test");
    let future = AuditQuery {
        since: Some(now() + Duration::hours(1)),
        limit: 100,
        ..Default::default()
    };
    assert!(store.list_audit(&future).await.unwrap().is_empty());
    let page = AuditQuery {
        before: Some(all[0].id),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.list_audit(&page).await.unwrap().len(), 2);
}
on_both_stores!(audit, audit_events_filter);

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

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
