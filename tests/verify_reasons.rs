//! Why Verify denies a key, and what a denial costs: every reason over real
//! gRPC, malformed keys answered without a lookup, unknown ones remembered.

mod common;

use std::time::Duration;

use keyward::proto::v1 as pb;

use common::{
    TestApp, TestDb,
    client::{issue_request, reason},
    counting::CountingStore,
};

async fn every_denial_reason(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let issued = api.issue(issue_request("acme", "ci", &["a:read"])).await;

    assert_eq!(reason(&api.verify("", &[]).await), pb::Reason::Missing);
    assert_eq!(
        reason(&api.verify("not a key", &[]).await),
        pb::Reason::Malformed
    );
    let unknown = keyward::key::format::generate("acme");
    let response = api.verify(unknown.expose(), &[]).await;
    assert_eq!(reason(&response), pb::Reason::Unknown);
    assert!(response.key_id.is_empty() && response.project.is_empty());

    // Expiry: issue a key that expires in a moment.
    let expires = keyward::proto::timestamp::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 1,
        nanos: 0,
    };
    let request = pb::IssueRequest {
        project: "acme".into(),
        label: "short".into(),
        expires_at: Some(expires),
        ..Default::default()
    };
    let short = api.issue(request).await;
    assert!(api.verify(&short.key, &[]).await.allowed);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = api.verify(&short.key, &[]).await;
    assert_eq!(reason(&expired), pb::Reason::Expired);
    assert!(expired.expires_at.is_some());
    assert!(api.verify(&issued.key, &["a:read"]).await.allowed);
}
on_both_stores!(reasons, every_denial_reason);

#[tokio::test]
async fn a_one_character_change_is_malformed_without_any_lookup() {
    let db = TestDb::sqlite();
    let store = CountingStore::new(db.store().await);
    let app = TestApp::spawn_with(common::config(&db.url, &[]), Some(store.clone())).await;
    let mut api = app.api().await;
    let key = api.issue(issue_request("acme", "ci", &[])).await.key;

    let lookups = store.lookups();
    let cached = app.state.lookup.l1_entries();
    let mut checked = 0;
    for i in 0..key.len() {
        let mut changed: Vec<char> = key.chars().collect();
        changed[i] = if changed[i] == 'x' { 'y' } else { 'x' };
        let changed: String = changed.into_iter().collect();
        let response = api.verify(&changed, &[]).await;
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
    let mut api = app.api().await;
    let unknown = keyward::key::format::generate("acme");
    let before = store.lookups();
    for _ in 0..20 {
        assert_eq!(
            reason(&api.verify(unknown.expose(), &[]).await),
            pb::Reason::Unknown
        );
    }
    assert_eq!(
        store.lookups() - before,
        1,
        "one store read, then the negative L1 entry answers"
    );
}
