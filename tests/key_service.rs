//! KeyService over real gRPC, against SQLite and Postgres.

mod common;

use std::time::Duration;

use keyward::proto::v1::{self as pb, key_service_client::KeyServiceClient};
use tonic::{Code, Request, transport::Channel};

use common::{TestApp, TestDb, counting::CountingStore, with_key};

type Client = KeyServiceClient<Channel>;

async fn issue(
    client: &mut Client,
    admin: &str,
    project: &str,
    label: &str,
    scopes: &[&str],
) -> pb::IssueResponse {
    let request = pb::IssueRequest {
        project: project.into(),
        label: label.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    client
        .issue(with_key(request, admin))
        .await
        .unwrap()
        .into_inner()
}

async fn verify(client: &mut Client, key: &str, scopes: &[&str]) -> pb::VerifyResponse {
    let request = pb::VerifyRequest {
        key: key.into(),
        required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        client_ip: String::new(),
    };
    client.verify(request).await.unwrap().into_inner()
}

fn reason(response: &pb::VerifyResponse) -> pb::Reason {
    pb::Reason::try_from(response.reason).unwrap()
}

async fn key_lifecycle(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut client = app.client().await;

    let issued = issue(
        &mut client,
        &admin,
        "acme",
        "checkout",
        &["orders:*", "users:read"],
    )
    .await;
    let info = issued.info.unwrap();
    assert!(issued.key.starts_with("acme_"));
    assert!(info.id.starts_with("key_"));
    assert_eq!(info.status, pb::KeyStatus::Active as i32);
    assert!(info.hint.starts_with("acme_...") && issued.key.ends_with(&info.hint[8..]));

    let ok = verify(&mut client, &issued.key, &["orders:read"]).await;
    assert!(ok.allowed);
    assert_eq!(reason(&ok), pb::Reason::Ok);
    assert_eq!(ok.key_id, info.id);
    assert_eq!(ok.project, "acme");
    assert_eq!(ok.scopes, vec!["orders:*", "users:read"]);

    let denied = verify(&mut client, &issued.key, &["users:write"]).await;
    assert!(!denied.allowed);
    assert_eq!(reason(&denied), pb::Reason::InsufficientScope);

    // Rotate with a one-second grace: both keys work, then only the new one.
    let rotate = pb::RotateRequest {
        key_id: info.id.clone(),
        grace_period: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
    };
    let rotated = client
        .rotate(with_key(rotate, &admin))
        .await
        .unwrap()
        .into_inner();
    let new_info = rotated.info.unwrap();
    let previous = rotated.previous.unwrap();
    assert_eq!(new_info.label, "checkout");
    assert_eq!(new_info.scopes, info.scopes);
    assert_eq!(new_info.replaces, info.id);
    assert_eq!(previous.replaced_by, new_info.id);
    assert_eq!(previous.status, pb::KeyStatus::Rotating as i32);
    assert!(
        verify(&mut client, &issued.key, &["orders:read"])
            .await
            .allowed,
        "old key works in its grace period"
    );
    assert!(
        verify(&mut client, &rotated.key, &["orders:read"])
            .await
            .allowed
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = verify(&mut client, &issued.key, &[]).await;
    assert_eq!(
        reason(&after),
        pb::Reason::Revoked,
        "old key denied after its grace period"
    );
    assert!(verify(&mut client, &rotated.key, &[]).await.allowed);

    // Revoke: denied at once on this replica, though it was cached.
    let revoke = pb::RevokeRequest {
        key_id: new_info.id.clone(),
        reason: "leaked".into(),
    };
    let revoked = client
        .revoke(with_key(revoke, &admin))
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(revoked.status, pb::KeyStatus::Revoked as i32);
    assert_eq!(revoked.revoke_reason, "leaked");
    let gone = verify(&mut client, &rotated.key, &[]).await;
    assert!(!gone.allowed);
    assert_eq!(reason(&gone), pb::Reason::Revoked);
    assert_eq!(gone.key_id, new_info.id);

    let got = client
        .get_key(with_key(
            pb::GetKeyRequest {
                key_id: info.id.clone(),
            },
            &admin,
        ))
        .await
        .unwrap();
    assert_eq!(
        got.into_inner().info.unwrap().status,
        pb::KeyStatus::Revoked as i32
    );
    app.stop().await;
}
on_both_stores!(lifecycle, key_lifecycle);

async fn zero_grace_denies_at_once(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut client = app.client().await;
    let issued = issue(&mut client, &admin, "acme", "ci", &[]).await;
    assert!(verify(&mut client, &issued.key, &[]).await.allowed);
    let rotate = pb::RotateRequest {
        key_id: issued.info.unwrap().id,
        grace_period: Some(prost_types::Duration::default()),
    };
    let rotated = client
        .rotate(with_key(rotate, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reason(&verify(&mut client, &issued.key, &[]).await),
        pb::Reason::Revoked
    );
    assert!(verify(&mut client, &rotated.key, &[]).await.allowed);

    // Absent grace means 24 hours.
    let again = pb::RotateRequest {
        key_id: rotated.info.unwrap().id,
        grace_period: None,
    };
    let third = client
        .rotate(with_key(again, &admin))
        .await
        .unwrap()
        .into_inner();
    let previous = third.previous.unwrap();
    let grace =
        previous.revoked_at.unwrap().seconds - third.info.unwrap().created_at.unwrap().seconds;
    assert!((86_399..=86_401).contains(&grace), "{grace}");
    assert!(verify(&mut client, &rotated.key, &[]).await.allowed);
}
on_both_stores!(zero_grace, zero_grace_denies_at_once);

async fn every_denial_reason(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut client = app.client().await;
    let issued = issue(&mut client, &admin, "acme", "ci", &["a:read"]).await;

    assert_eq!(
        reason(&verify(&mut client, "", &[]).await),
        pb::Reason::Missing
    );
    assert_eq!(
        reason(&verify(&mut client, "not a key", &[]).await),
        pb::Reason::Malformed
    );
    let unknown = keyward::key::format::generate("acme");
    let response = verify(&mut client, unknown.expose(), &[]).await;
    assert_eq!(reason(&response), pb::Reason::Unknown);
    assert!(response.key_id.is_empty() && response.project.is_empty());

    // Expiry: issue a key that expires in a moment.
    let expires = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 1,
        nanos: 0,
    };
    let request = pb::IssueRequest {
        project: "acme".into(),
        label: "short".into(),
        expires_at: Some(expires),
        ..Default::default()
    };
    let short = client
        .issue(with_key(request, &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(verify(&mut client, &short.key, &[]).await.allowed);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = verify(&mut client, &short.key, &[]).await;
    assert_eq!(reason(&expired), pb::Reason::Expired);
    assert!(expired.expires_at.is_some());
    assert!(verify(&mut client, &issued.key, &["a:read"]).await.allowed);
}
on_both_stores!(reasons, every_denial_reason);

#[tokio::test]
async fn a_one_character_change_is_malformed_without_any_lookup() {
    let db = TestDb::sqlite();
    let store = CountingStore::new(db.store().await);
    let app = TestApp::spawn_with(common::config(&db.url, &[]), Some(store.clone())).await;
    let admin = app.bootstrap().await;
    let mut client = app.client().await;
    let key = issue(&mut client, &admin, "acme", "ci", &[]).await.key;

    let lookups = store.lookups();
    let cached = app.state.lookup.l1_entries();
    let mut checked = 0;
    for i in 0..key.len() {
        let mut changed: Vec<char> = key.chars().collect();
        changed[i] = if changed[i] == 'x' { 'y' } else { 'x' };
        let changed: String = changed.into_iter().collect();
        let response = verify(&mut client, &changed, &[]).await;
        assert_eq!(reason(&response), pb::Reason::Malformed, "position {i}");
        checked += 1;
    }
    assert_eq!(checked, key.len());
    assert_eq!(
        store.lookups(),
        lookups,
        "a malformed key must not reach the store"
    );
    assert_eq!(app.state.lookup.l1_entries(), cached, "nor the cache");
}

#[tokio::test]
async fn unknown_keys_are_remembered_briefly() {
    let db = TestDb::sqlite();
    let store = CountingStore::new(db.store().await);
    let app = TestApp::spawn_with(common::config(&db.url, &[]), Some(store.clone())).await;
    let mut client = app.client().await;
    let unknown = keyward::key::format::generate("acme");
    let before = store.lookups();
    for _ in 0..20 {
        assert_eq!(
            reason(&verify(&mut client, unknown.expose(), &[]).await),
            pb::Reason::Unknown
        );
    }
    assert_eq!(
        store.lookups() - before,
        1,
        "one store read, then the negative L1 entry answers"
    );
}

async fn admin_auth(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let root = app.bootstrap().await;
    let mut client = app.client().await;
    let get = |id: &str| pb::GetKeyRequest {
        key_id: id.to_owned(),
    };

    // No credential, a bad one, a key without the admin scope.
    let err = client
        .get_key(Request::new(get("key_x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .get_key(with_key(get("key_x"), "garbage"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let plain = issue(&mut client, &root, "acme", "plain", &["orders:read"]).await;
    let target = plain.info.as_ref().unwrap().id.clone();
    let err = client
        .get_key(with_key(get(&target), &plain.key))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A project admin manages its own project only.
    let acme_admin = issue(&mut client, &root, "acme", "acme-admin", &["keyward:admin"])
        .await
        .key;
    let other = issue(&mut client, &root, "globex", "ci", &[]).await;
    let other_id = other.info.unwrap().id;
    issue(&mut client, &acme_admin, "acme", "by-project-admin", &[]).await;
    client
        .get_key(with_key(get(&target), &acme_admin))
        .await
        .unwrap();

    let into_other = pb::IssueRequest {
        project: "globex".into(),
        label: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        client
            .issue(with_key(into_other, &acme_admin))
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
        client
            .revoke(with_key(revoke_other, &acme_admin))
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
        client
            .rotate(with_key(rotate_other, &acme_admin))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .get_key(with_key(get(&other_id), &acme_admin))
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
        client
            .list_keys(with_key(list_other, &acme_admin))
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
        client
            .issue(with_key(into_root, &acme_admin))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    // Listing without a project shows a project admin its own keys only.
    let own = client
        .list_keys(with_key(pb::ListKeysRequest::default(), &acme_admin))
        .await
        .unwrap()
        .into_inner();
    assert!(!own.keys.is_empty());
    assert!(own.keys.iter().all(|k| k.project == "acme"));

    // The other project's key is untouched.
    let still = client
        .get_key(with_key(get(&other_id), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.info.unwrap().status, pb::KeyStatus::Active as i32);

    // A revoked admin key stops working at once.
    let acme_admin_id = verify(&mut client, &acme_admin, &[]).await.key_id;
    let revoke = pb::RevokeRequest {
        key_id: acme_admin_id,
        reason: "left".into(),
    };
    client.revoke(with_key(revoke, &root)).await.unwrap();
    assert_eq!(
        client
            .get_key(with_key(get(&target), &acme_admin))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}
on_both_stores!(admin_authentication, admin_auth);

async fn bad_input_is_refused_by_field(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut client = app.client().await;
    let good = || pb::IssueRequest {
        project: "acme".into(),
        label: "ci".into(),
        ..Default::default()
    };

    let cases: Vec<(pb::IssueRequest, &str)> = vec![
        (
            pb::IssueRequest {
                project: String::new(),
                ..good()
            },
            "project",
        ),
        (
            pb::IssueRequest {
                label: String::new(),
                ..good()
            },
            "label",
        ),
        (
            pb::IssueRequest {
                project: "p".repeat(129),
                ..good()
            },
            "project",
        ),
        (
            pb::IssueRequest {
                label: "l".repeat(129),
                ..good()
            },
            "label",
        ),
        (
            pb::IssueRequest {
                scopes: vec![String::new()],
                ..good()
            },
            "scopes[0]",
        ),
        (
            pb::IssueRequest {
                scopes: vec!["s".repeat(129)],
                ..good()
            },
            "scopes[0]",
        ),
        (
            pb::IssueRequest {
                scopes: (0..65).map(|i| format!("s{i}")).collect(),
                ..good()
            },
            "scopes",
        ),
        (
            pb::IssueRequest {
                expires_at: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
                ..good()
            },
            "expires_at",
        ),
    ];
    for (request, field) in cases {
        let err = client.issue(with_key(request, &admin)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(
            err.message().starts_with(&format!("{field}:")),
            "{field}: {}",
            err.message()
        );
    }

    let too_long = pb::VerifyRequest {
        key: "k".repeat(513),
        ..Default::default()
    };
    let err = client.verify(too_long).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("key:"));
    let many = pb::VerifyRequest {
        key: "k".into(),
        required_scopes: vec!["a".into(); 65],
        ..Default::default()
    };
    assert_eq!(
        client.verify(many).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let bad_ip = pb::VerifyRequest {
        key: "k".into(),
        client_ip: "nope".into(),
        ..Default::default()
    };
    assert!(
        client
            .verify(bad_ip)
            .await
            .unwrap_err()
            .message()
            .starts_with("client_ip:")
    );

    let err = client
        .get_key(with_key(
            pb::GetKeyRequest {
                key_id: "key_nope".into(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("key_id:"));
    let unknown = keyward::key::KeyId::generate().to_string();
    let err = client
        .get_key(with_key(pb::GetKeyRequest { key_id: unknown }, &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let bad_token = pb::ListKeysRequest {
        page_token: "garbage!".into(),
        ..Default::default()
    };
    let err = client
        .list_keys(with_key(bad_token, &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("page_token:"));

    let no_mask = pb::UpdateKeyRequest {
        key_id: keyward::key::KeyId::generate().to_string(),
        ..Default::default()
    };
    assert!(
        client
            .update_key(with_key(no_mask, &admin))
            .await
            .unwrap_err()
            .message()
            .starts_with("update_mask:")
    );

    // Over 64 KiB is refused before it is decoded.
    let huge = pb::IssueRequest {
        metadata: [("big".to_string(), "v".repeat(70 * 1024))].into(),
        ..good()
    };
    let err = client.issue(with_key(huge, &admin)).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert_ne!(
        err.code(),
        Code::InvalidArgument,
        "refused by size, not by a field check: {err:?}"
    );

    // Nothing was written by any of these.
    let listed = client
        .list_keys(with_key(
            pb::ListKeysRequest {
                project: "acme".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await;
    assert!(listed.unwrap().into_inner().keys.is_empty());

    // A label taken by a live key: ALREADY_EXISTS, and still one key.
    client.issue(with_key(good(), &admin)).await.unwrap();
    assert_eq!(
        client
            .issue(with_key(good(), &admin))
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );
    let listed = client
        .list_keys(with_key(
            pb::ListKeysRequest {
                project: "acme".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await;
    assert_eq!(listed.unwrap().into_inner().keys.len(), 1);
}
on_both_stores!(bad_input, bad_input_is_refused_by_field);

async fn list_update_and_pages(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut client = app.client().await;
    let mut keys = Vec::new();
    for i in 0..7 {
        keys.push(issue(&mut client, &admin, "acme", &format!("k{i}"), &["a:read"]).await);
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
        let page = client
            .list_keys(with_key(request, &admin))
            .await
            .unwrap()
            .into_inner();
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
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["scopes".into(), "metadata".into()],
        }),
        ..Default::default()
    };
    let updated = client
        .update_key(with_key(update, &admin))
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(updated.label, "k0", "label not in the mask: unchanged");
    assert_eq!(updated.scopes, vec!["b:write"]);
    assert_eq!(updated.metadata["owner"], "team-b");
    // Update evicted the cached record: the new scopes apply at once.
    let response = verify(&mut client, &keys[0].key, &["a:read"]).await;
    assert_eq!(reason(&response), pb::Reason::InsufficientScope);
    assert!(
        verify(&mut client, &keys[0].key, &["b:write"])
            .await
            .allowed
    );

    let bad_mask = pb::UpdateKeyRequest {
        key_id: target,
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["project".into()],
        }),
        ..Default::default()
    };
    assert_eq!(
        client
            .update_key(with_key(bad_mask, &admin))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    let revoked = pb::ListKeysRequest {
        status: pb::KeyStatus::Revoked as i32,
        ..Default::default()
    };
    assert!(
        client
            .list_keys(with_key(revoked, &admin))
            .await
            .unwrap()
            .into_inner()
            .keys
            .is_empty()
    );
}
on_both_stores!(list_and_update, list_update_and_pages);

async fn stores_hold_no_plaintext(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut client = app.client().await;
    let issued = issue(&mut client, &admin, "acme", "ci", &[]).await;
    let rotate = pb::RotateRequest {
        key_id: issued.info.unwrap().id,
        grace_period: None,
    };
    let rotated = client
        .rotate(with_key(rotate, &admin))
        .await
        .unwrap()
        .into_inner();
    app.stop().await;

    let dump = common::dump_database(&db).await;
    assert!(dump.contains("acme"), "the dump is real");
    for key in [&admin, &issued.key, &rotated.key] {
        let secret = &key[key.len() - 49..key.len() - 6];
        assert!(!dump.contains(secret), "a key's secret is in the store");
    }
}
on_both_stores!(no_plaintext_in_store, stores_hold_no_plaintext);

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let channel = Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "keyward.v1.KeyService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"keyward.v1.KeyService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}
