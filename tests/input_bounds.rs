//! Bad input is refused by field, before anything is written.

mod common;

use keyward::proto::v1 as pb;
use tonic::Code;

use common::{TestApp, TestDb};

async fn bad_input_is_refused_by_field(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
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
                expires_at: Some(keyward::proto::timestamp::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
                ..good()
            },
            "expires_at",
        ),
    ];
    for (request, field) in cases {
        let err = api.try_issue(request).await.unwrap_err();
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
    let err = api.try_verify(too_long).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("key:"));
    let many = pb::VerifyRequest {
        key: "k".into(),
        required_scopes: vec!["a".into(); 65],
        ..Default::default()
    };
    assert_eq!(
        api.try_verify(many).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let bad_ip = pb::VerifyRequest {
        key: "k".into(),
        client_ip: "nope".into(),
        ..Default::default()
    };
    assert!(
        api.try_verify(bad_ip)
            .await
            .unwrap_err()
            .message()
            .starts_with("client_ip:")
    );

    let err = api
        .try_get(pb::GetKeyRequest {
            key_id: "key_nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("key_id:"));
    let unknown = keyward::key::KeyId::generate().to_string();
    let err = api
        .try_get(pb::GetKeyRequest { key_id: unknown })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let bad_token = pb::ListKeysRequest {
        page_token: "garbage!".into(),
        ..Default::default()
    };
    let err = api.try_list(bad_token).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("page_token:"));

    let no_mask = pb::UpdateKeyRequest {
        key_id: keyward::key::KeyId::generate().to_string(),
        ..Default::default()
    };
    assert!(
        api.try_update(no_mask)
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
    let err = api.try_issue(huge).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert_ne!(
        err.code(),
        Code::InvalidArgument,
        "refused by size, not by a field check: {err:?}"
    );

    // Nothing was written by any of these.
    let listed = api
        .try_list(pb::ListKeysRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await;
    assert!(listed.unwrap().keys.is_empty());

    // A label taken by a live key: ALREADY_EXISTS, and still one key.
    api.try_issue(good()).await.unwrap();
    assert_eq!(
        api.try_issue(good()).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    let listed = api
        .try_list(pb::ListKeysRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(listed.unwrap().keys.len(), 1);
}
on_both_stores!(bad_input, bad_input_is_refused_by_field);
