//! Admin rules at the edges, over real gRPC on both stores: a project admin
//! learns nothing from another project's key ids, reserved scopes are
//! granted by name and by all-projects admins only, and times and limits
//! are bounded.

mod common;

use chrono::Utc;
use keyward::proto::timestamp::Timestamp;
use keyward::{
    key::{Digest, KeyId, format},
    limit::RateLimit,
    proto::v1 as pb,
    store::{AuditAction, AuditEvent, NewKey},
};
use pbjson_types::FieldMask;
use tonic::{Code, Status};

use common::{TestApp, TestDb, client::issue_request};

/// 9999-12-31T23:59:59Z, the latest time keyward accepts.
const MAX_SECONDS: i64 = 253_402_300_799;

/// The status with the id itself blanked out, so two answers about two ids
/// can be compared.
fn answer(result: Result<impl Sized, Status>, id: &str) -> (Code, String) {
    match result {
        Ok(_) => panic!("expected an error for {id}"),
        Err(status) => (status.code(), status.message().replace(id, "<id>")),
    }
}

async fn foreign_ids_look_unknown(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let acme = api
        .issue(issue_request("acme", "acme-admin", &["keyward:admin"]))
        .await
        .key;
    let foreign = api
        .issue(issue_request("globex", "ci", &["a:read"]))
        .await
        .info
        .unwrap()
        .id;
    let unknown = KeyId::generate().to_string();

    let mut answers = Vec::new();
    for id in [&foreign, &unknown] {
        let mut c = api.as_admin(&acme);
        let get = pb::GetKeyRequest { key_id: id.clone() };
        let revoke = pb::RevokeRequest {
            key_id: id.clone(),
            reason: String::new(),
        };
        let rotate = pb::RotateRequest {
            key_id: id.clone(),
            grace_period: None,
        };
        let update = pb::UpdateKeyRequest {
            key_id: id.clone(),
            label: "x".into(),
            update_mask: Some(FieldMask {
                paths: vec!["label".into()],
            }),
            ..Default::default()
        };
        let usage = pb::GetUsageRequest {
            key_id: id.clone(),
            ..Default::default()
        };
        let audit = pb::ListAuditEventsRequest {
            key_id: id.clone(),
            ..Default::default()
        };
        answers.push((
            [
                answer(c.try_get(get).await, id),
                answer(c.try_revoke(revoke).await, id),
                answer(c.try_rotate(rotate).await, id),
                answer(c.try_update(update).await, id),
                answer(c.try_usage(usage).await, id),
            ],
            c.audit(audit).await.events.len(),
        ));
    }
    for (code, message) in &answers[0].0 {
        assert_eq!(*code, Code::NotFound, "{message}");
        assert!(!message.contains("globex"), "{message}");
    }
    assert_eq!(
        answers[0], answers[1],
        "a foreign id and an unknown one get the same answers"
    );
    assert_eq!(answers[0].1, 0, "no audit events of another project");

    // Nothing happened to the foreign key.
    let still = api
        .get(pb::GetKeyRequest {
            key_id: foreign.clone(),
        })
        .await
        .info
        .unwrap();
    assert_eq!(still.status, pb::KeyStatus::Active as i32);
    assert_eq!(still.label, "ci");
}
on_both_stores!(foreign_key_ids, foreign_ids_look_unknown);

async fn reserved_scopes(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let acme = api
        .issue(issue_request("acme", "acme-admin", &["keyward:admin"]))
        .await
        .key;

    // A project admin may not put a reserved scope on a key, in any case.
    for scope in ["keyward:admin", "KEYWARD:admin", "keyward:other"] {
        let err = api
            .as_admin(&acme)
            .try_issue(issue_request("acme", "minted", &[scope]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{scope}: {err:?}");
    }
    let plain = api
        .as_admin(&acme)
        .issue(issue_request("acme", "plain", &["a:read"]))
        .await
        .info
        .unwrap()
        .id;
    let grant = pb::UpdateKeyRequest {
        key_id: plain.clone(),
        scopes: vec!["a:read".into(), "keyward:admin".into()],
        update_mask: Some(FieldMask {
            paths: vec!["scopes".into()],
        }),
        ..Default::default()
    };
    let err = api
        .as_admin(&acme)
        .try_update(grant.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // An all-projects admin may, by name only.
    api.try_update(grant).await.unwrap();
    let err = api
        .try_issue(issue_request("acme", "wild", &["keyward:*"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("scopes[0]"), "{}", err.message());

    // A key holding only a wildcard over the namespace (written before the
    // rule, straight to the store) is no admin, nor is `*:`-style cover.
    let store = db.store().await;
    for (i, scope) in ["keyward:*", "keyward:admin:*"].into_iter().enumerate() {
        let secret = format::generate(&format::prefix_for_project("keyward"));
        let now = Utc::now();
        let key = NewKey {
            id: KeyId::generate(),
            project: "keyward".into(),
            label: format!("wildcard-{i}"),
            digest: Digest::of(format::parse(secret.expose()).unwrap()),
            hint: format::hint(&secret),
            scopes: vec![scope.into()],
            metadata: Default::default(),
            created_at: now,
            expires_at: None,
            replaces: None,
            rate_limit: None,
            quota: None,
            allowed_cidrs: Vec::new(),
        };
        let event = AuditEvent {
            at: now,
            actor: None,
            action: AuditAction::Issue,
            project: key.project.clone(),
            target: key.id.clone(),
            source: "test".into(),
            details: serde_json::json!({}),
        };
        store.insert(&key, &event).await.unwrap();
        let err = api
            .as_admin(secret.expose())
            .try_list(pb::ListKeysRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{scope}: {err:?}");
        let verified = api
            .try_verify(pb::VerifyRequest {
                key: secret.expose().to_owned(),
                required_scopes: vec!["keyward:admin".into()],
                client_ip: String::new(),
            })
            .await
            .unwrap();
        assert!(!verified.allowed, "{scope} covers keyward:admin");
    }
}
on_both_stores!(reserved_scopes_by_name, reserved_scopes);

fn field_of(status: Status) -> String {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .message()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn bounded_inputs(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;

    let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
    for (expires_at, case) in [
        (at(MAX_SECONDS + 1), "after 9999"),
        (at(200_000 * 31_556_952), "year 200000"),
        (at(-1), "before 1970"),
    ] {
        let mut r = issue_request("acme", "late", &[]);
        r.expires_at = expires_at;
        let err = api.try_issue(r).await.unwrap_err();
        assert_eq!(field_of(err), "expires_at", "{case}");
    }
    let mut r = issue_request("acme", "burst", &[]);
    r.rate_limit = Some(pb::RateLimit {
        limit: 1,
        period: None,
        burst: u32::MAX,
    });
    let err = api.try_issue(r).await.unwrap_err();
    assert_eq!(field_of(err), "rate_limit.burst");
    let mut r = issue_request("acme", "quota", &[]);
    r.quota = Some(pb::Quota {
        limit: i64::MAX,
        period: pb::quota::Period::Day as i32,
        ..Default::default()
    });
    let err = api.try_issue(r).await.unwrap_err();
    assert_eq!(field_of(err), "quota.limit");
    let usage = pb::GetUsageRequest {
        project: "acme".into(),
        since: at(MAX_SECONDS + 1),
        ..Default::default()
    };
    let err = api.try_usage(usage).await.unwrap_err();
    assert_eq!(field_of(err), "since");

    // The latest allowed expiry rotates (once a panic, now the successor's
    // expiry is held at the bound) and UpdateKey checks limits too.
    let mut r = issue_request("acme", "far", &["a:read"]);
    r.expires_at = at(MAX_SECONDS);
    let far = api.issue(r).await.info.unwrap().id;
    let rotated = api
        .rotate(pb::RotateRequest {
            key_id: far.clone(),
            grace_period: None,
        })
        .await;
    let successor = rotated.info.unwrap();
    assert_eq!(successor.expires_at.unwrap().seconds, MAX_SECONDS);
    let update = pb::UpdateKeyRequest {
        key_id: successor.id.clone(),
        rate_limit: Some(pb::RateLimit {
            limit: 1,
            period: None,
            burst: 10_000_000,
        }),
        update_mask: Some(FieldMask {
            paths: vec!["rate_limit".into()],
        }),
        ..Default::default()
    };
    let err = api.try_update(update).await.unwrap_err();
    assert_eq!(field_of(err), "rate_limit.burst");

    // The largest burst allowed, at the slowest rate, lets the first call in.
    let mut r = issue_request("acme", "slow", &[]);
    r.rate_limit = Some(pb::RateLimit {
        limit: 1,
        period: Some(pbjson_types::Duration {
            seconds: 86_400,
            nanos: 0,
        }),
        burst: 1_000_000,
    });
    let slow = api.issue(r).await.key;
    let verified = api
        .try_verify(pb::VerifyRequest {
            key: slow,
            required_scopes: vec![],
            client_ip: String::new(),
        })
        .await
        .unwrap();
    assert!(verified.allowed, "{verified:?}");

    // A huge burst stored before the bound (straight to the store) saturates
    // instead of overflowing into RATE_LIMITED.
    let store = db.store().await;
    let secret = format::generate(&format::prefix_for_project("acme"));
    let now = Utc::now();
    let key = NewKey {
        id: KeyId::generate(),
        project: "acme".into(),
        label: "legacy-burst".into(),
        digest: Digest::of(format::parse(secret.expose()).unwrap()),
        hint: format::hint(&secret),
        scopes: vec![],
        metadata: Default::default(),
        created_at: now,
        expires_at: None,
        replaces: None,
        rate_limit: Some(RateLimit {
            limit: 1,
            period: std::time::Duration::from_secs(86_400),
            burst: u32::MAX,
        }),
        quota: None,
        allowed_cidrs: Vec::new(),
    };
    let event = AuditEvent {
        at: now,
        actor: None,
        action: AuditAction::Issue,
        project: key.project.clone(),
        target: key.id.clone(),
        source: "test".into(),
        details: serde_json::json!({}),
    };
    store.insert(&key, &event).await.unwrap();
    for call in 0..3 {
        let verified = api
            .try_verify(pb::VerifyRequest {
                key: secret.expose().to_owned(),
                required_scopes: vec![],
                client_ip: String::new(),
            })
            .await
            .unwrap();
        assert!(verified.allowed, "call {call}: {verified:?}");
    }
}
on_both_stores!(times_and_limits_are_bounded, bounded_inputs);
