//! A key's life over real gRPC on both stores: issue, verify, rotate with and
//! without grace, revoke, list and update, and nothing secret at rest.

mod common;

use std::time::Duration;

use keyward::proto::v1 as pb;
use tonic::Code;

use common::{
    TestApp, TestDb,
    client::{issue_request, reason},
};

async fn key_lifecycle(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;

    let issued = api
        .issue(issue_request(
            "acme",
            "checkout",
            &["orders:*", "users:read"],
        ))
        .await;
    let info = issued.info.unwrap();
    assert!(issued.key.starts_with("acme_"));
    assert!(info.id.starts_with("key_"));
    assert_eq!(info.status, pb::KeyStatus::Active as i32);
    assert!(info.hint.starts_with("acme_...") && issued.key.ends_with(&info.hint[8..]));

    let ok = api.verify(&issued.key, &["orders:read"]).await;
    assert!(ok.allowed);
    assert_eq!(reason(&ok), pb::Reason::Ok);
    assert_eq!(ok.key_id, info.id);
    assert_eq!(ok.project, "acme");
    assert_eq!(ok.scopes, vec!["orders:*", "users:read"]);

    let denied = api.verify(&issued.key, &["users:write"]).await;
    assert!(!denied.allowed);
    assert_eq!(reason(&denied), pb::Reason::InsufficientScope);

    // Rotate with a one-second grace: both keys work, then only the new one.
    let rotate = pb::RotateRequest {
        key_id: info.id.clone(),
        grace_period: Some(pbjson_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
    };
    let rotated = api.rotate(rotate).await;
    let new_info = rotated.info.unwrap();
    let previous = rotated.previous.unwrap();
    assert_eq!(new_info.label, "checkout");
    assert_eq!(new_info.scopes, info.scopes);
    assert_eq!(new_info.replaces, info.id);
    assert_eq!(previous.replaced_by, new_info.id);
    assert_eq!(previous.status, pb::KeyStatus::Rotating as i32);
    assert!(
        api.verify(&issued.key, &["orders:read"]).await.allowed,
        "old key works in its grace period"
    );
    assert!(api.verify(&rotated.key, &["orders:read"]).await.allowed);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = api.verify(&issued.key, &[]).await;
    assert_eq!(
        reason(&after),
        pb::Reason::Revoked,
        "old key denied after its grace period"
    );
    assert!(api.verify(&rotated.key, &[]).await.allowed);

    // Revoke: denied at once on this replica, though it was cached.
    let revoke = pb::RevokeRequest {
        key_id: new_info.id.clone(),
        reason: "leaked".into(),
    };
    let revoked = api.revoke(revoke).await.info.unwrap();
    assert_eq!(revoked.status, pb::KeyStatus::Revoked as i32);
    assert_eq!(revoked.revoke_reason, "leaked");
    let gone = api.verify(&rotated.key, &[]).await;
    assert!(!gone.allowed);
    assert_eq!(reason(&gone), pb::Reason::Revoked);
    assert_eq!(gone.key_id, new_info.id);

    assert_eq!(
        api.get_id(&info.id).await.status,
        pb::KeyStatus::Revoked as i32
    );
    app.stop().await;
}
on_both_stores!(lifecycle, key_lifecycle);

async fn zero_grace_denies_at_once(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let issued = api.issue(issue_request("acme", "ci", &[])).await;
    assert!(api.verify(&issued.key, &[]).await.allowed);
    let rotate = pb::RotateRequest {
        key_id: issued.info.unwrap().id,
        grace_period: Some(pbjson_types::Duration::default()),
    };
    let rotated = api.rotate(rotate).await;
    assert_eq!(
        reason(&api.verify(&issued.key, &[]).await),
        pb::Reason::Revoked
    );
    assert!(api.verify(&rotated.key, &[]).await.allowed);

    // Absent grace means 24 hours.
    let again = pb::RotateRequest {
        key_id: rotated.info.unwrap().id,
        grace_period: None,
    };
    let third = api.rotate(again).await;
    let previous = third.previous.unwrap();
    let grace =
        previous.revoked_at.unwrap().seconds - third.info.unwrap().created_at.unwrap().seconds;
    assert!((86_399..=86_401).contains(&grace), "{grace}");
    assert!(api.verify(&rotated.key, &[]).await.allowed);
}
on_both_stores!(zero_grace, zero_grace_denies_at_once);

async fn list_update_and_pages(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let mut keys = Vec::new();
    for i in 0..7 {
        keys.push(
            api.issue(issue_request("acme", &format!("k{i}"), &["a:read"]))
                .await,
        );
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListKeysRequest {
            project: "acme".into(),
            page_size: 3,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = api.list(request).await;
        assert!(page.keys.len() <= 3);
        seen.extend(page.keys.into_iter().map(|k| k.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected: Vec<String> = keys
        .iter()
        .map(|k| k.info.as_ref().unwrap().id.clone())
        .collect();
    expected.reverse();
    assert_eq!(seen, expected, "every key once, newest first");

    let target = keys[0].info.as_ref().unwrap().id.clone();
    let update = pb::UpdateKeyRequest {
        key_id: target.clone(),
        label: "renamed".into(),
        scopes: vec!["b:write".into()],
        metadata: [("owner".to_string(), "team-b".to_string())].into(),
        update_mask: Some(pbjson_types::FieldMask {
            paths: vec!["scopes".into(), "metadata".into()],
        }),
        ..Default::default()
    };
    let updated = api.update(update).await.info.unwrap();
    assert_eq!(updated.label, "k0", "label not in the mask: unchanged");
    assert_eq!(updated.scopes, vec!["b:write"]);
    assert_eq!(updated.metadata["owner"], "team-b");
    // Update evicted the cached record: the new scopes apply at once.
    let response = api.verify(&keys[0].key, &["a:read"]).await;
    assert_eq!(reason(&response), pb::Reason::InsufficientScope);
    assert!(api.verify(&keys[0].key, &["b:write"]).await.allowed);

    let bad_mask = pb::UpdateKeyRequest {
        key_id: target,
        update_mask: Some(pbjson_types::FieldMask {
            paths: vec!["project".into()],
        }),
        ..Default::default()
    };
    assert_eq!(
        api.try_update(bad_mask).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let revoked = pb::ListKeysRequest {
        status: pb::KeyStatus::Revoked as i32,
        ..Default::default()
    };
    assert!(api.list(revoked).await.keys.is_empty());
}
on_both_stores!(list_and_update, list_update_and_pages);

async fn stores_hold_no_plaintext(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let issued = api.issue(issue_request("acme", "ci", &[])).await;
    let rotate = pb::RotateRequest {
        key_id: issued.info.unwrap().id,
        grace_period: None,
    };
    let rotated = api.rotate(rotate).await;
    app.stop().await;

    let dump = common::dump_database(&db).await;
    assert!(dump.contains("acme"), "the dump is real");
    for key in [&api.admin, &issued.key, &rotated.key] {
        let secret = &key[key.len() - 49..key.len() - 6];
        assert!(!dump.contains(secret), "a key's secret is in the store");
    }
}
on_both_stores!(no_plaintext_in_store, stores_hold_no_plaintext);
