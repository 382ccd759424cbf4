//! Keys issued before the `_kw1_` marker keep verifying through a server
//! running the marked format.

mod common;

use chrono::Utc;
use keyward::{
    key::{Digest, KeyId, format},
    store::{AuditAction, AuditEvent, NewKey},
};
use serde_json::json;

use common::{TestApp, TestDb, config};

/// Printed by `keyward admin bootstrap` built from the code before the
/// marker (commit 78fda93); the same literal as in src/key/format.rs.
const LEGACY_KEY: &str = "keyward_adfRUuSyD4AKLTswcaD5j5jkK1IOKQRlUG349GZ84Qj2mqpoy";

#[tokio::test]
async fn a_key_issued_before_the_marker_still_verifies() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    store.migrate().await.unwrap();
    let parsed = format::parse(LEGACY_KEY).unwrap();
    assert!(!parsed.is_marked());
    let key = NewKey {
        id: KeyId::generate(),
        project: "acme".into(),
        label: "old".into(),
        digest: Digest::of(parsed),
        hint: format::hint_of(parsed),
        scopes: vec!["orders:read".into()],
        metadata: Default::default(),
        created_at: Utc::now(),
        expires_at: None,
        replaces: None,
        rate_limit: None,
        quota: None,
        allowed_cidrs: vec![],
    };
    let event = AuditEvent {
        at: Utc::now(),
        actor: None,
        action: AuditAction::Issue,
        project: key.project.clone(),
        target: key.id.clone(),
        source: "test".into(),
        details: json!({}),
    };
    store.insert(&key, &event).await.unwrap();

    let app = TestApp::spawn_with(config(&db.url, &[]), Some(store)).await;
    let verdict = app
        .anonymous()
        .await
        .verify(LEGACY_KEY, &["orders:read"])
        .await;
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.key_id, key.id.to_string());
    app.stop().await;
}
