//! Listing keys and audit events: filters and pages.

use chrono::Duration;
use keyward::store::{AuditAction, AuditQuery, KeyStatus, ListQuery, StoredKey};

use super::fixtures::{by, insert, list_query, new_key, now};
use crate::common::TestDb;

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
