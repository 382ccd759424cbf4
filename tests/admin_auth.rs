//! Who may call the admin API: no credential, a bad one, a key without the
//! admin scope, a project admin outside its project, a revoked admin key.

mod common;

use keyward::proto::v1 as pb;
use tonic::{Code, Request};

use common::{TestApp, TestDb, client::issue_request};

async fn admin_auth(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let get = |id: &str| pb::GetKeyRequest {
        key_id: id.to_owned(),
    };

    // No credential, a bad one, a key without the admin scope.
    let err = api
        .grpc
        .get_key(Request::new(get("key_x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = api
        .as_admin("garbage")
        .try_get(get("key_x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let plain = api
        .issue(issue_request("acme", "plain", &["orders:read"]))
        .await;
    let target = plain.info.as_ref().unwrap().id.clone();
    let err = api
        .as_admin(&plain.key)
        .try_get(get(&target))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A project admin manages its own project only.
    let acme_admin = api
        .issue(issue_request("acme", "acme-admin", &["keyward:admin"]))
        .await
        .key;
    let other = api.issue(issue_request("globex", "ci", &[])).await;
    let other_id = other.info.unwrap().id;
    api.as_admin(&acme_admin)
        .issue(issue_request("acme", "by-project-admin", &[]))
        .await;
    api.as_admin(&acme_admin)
        .try_get(get(&target))
        .await
        .unwrap();

    let into_other = pb::IssueRequest {
        project: "globex".into(),
        label: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        api.as_admin(&acme_admin)
            .try_issue(into_other)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let revoke_other = pb::RevokeRequest {
        key_id: other_id.clone(),
        reason: String::new(),
    };
    assert_eq!(
        api.as_admin(&acme_admin)
            .try_revoke(revoke_other)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let rotate_other = pb::RotateRequest {
        key_id: other_id.clone(),
        grace_period: None,
    };
    assert_eq!(
        api.as_admin(&acme_admin)
            .try_rotate(rotate_other)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        api.as_admin(&acme_admin)
            .try_get(get(&other_id))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let list_other = pb::ListKeysRequest {
        project: "globex".into(),
        ..Default::default()
    };
    assert_eq!(
        api.as_admin(&acme_admin)
            .try_list(list_other)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let into_root = pb::IssueRequest {
        project: "keyward".into(),
        label: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        api.as_admin(&acme_admin)
            .try_issue(into_root)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    // Listing without a project shows a project admin its own keys only.
    let own = api
        .as_admin(&acme_admin)
        .list(pb::ListKeysRequest::default())
        .await;
    assert!(!own.keys.is_empty());
    assert!(own.keys.iter().all(|k| k.project == "acme"));

    // The other project's key is untouched.
    let still = api.get(get(&other_id)).await;
    assert_eq!(still.info.unwrap().status, pb::KeyStatus::Active as i32);

    // A revoked admin key stops working at once.
    let acme_admin_id = api.verify(&acme_admin, &[]).await.key_id;
    let revoke = pb::RevokeRequest {
        key_id: acme_admin_id,
        reason: "left".into(),
    };
    api.try_revoke(revoke).await.unwrap();
    assert_eq!(
        api.as_admin(&acme_admin)
            .try_get(get(&target))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}
on_both_stores!(admin_authentication, admin_auth);
