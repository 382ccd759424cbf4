//! The invalidation outbox on both engines: every write that can narrow a
//! key leaves a row in its own transaction, rows come back in seq order, a
//! tail that reads while writers commit misses none, and pruning is by age.

mod common;

use std::{collections::HashSet, sync::Arc};

use chrono::{Duration, Utc};
use keyward::{
    key::{Digest, KeyId, format},
    store::{
        AuditAction, AuditDraft, AuditEvent, KeyChanges, KeyStore, NewKey, OutboxRow, StoredKey,
        WriteBy,
    },
};
use serde_json::json;

use common::TestDb;

fn new_key(label: &str) -> NewKey {
    let secret = format::generate(&format::prefix_for_project("acme"));
    NewKey {
        id: KeyId::generate(),
        project: "acme".into(),
        label: label.into(),
        digest: Digest::of(format::parse(secret.expose()).unwrap()),
        hint: format::hint(&secret),
        scopes: vec!["orders:read".into()],
        metadata: Default::default(),
        created_at: Utc::now(),
        expires_at: None,
        replaces: None,
        rate_limit: None,
        quota: None,
        allowed_cidrs: Vec::new(),
    }
}

fn event(action: AuditAction, id: &KeyId) -> AuditEvent {
    AuditEvent {
        at: Utc::now(),
        actor: None,
        action,
        project: "acme".into(),
        target: id.clone(),
        source: "test".into(),
        details: json!({}),
    }
}

/// A write by an all-projects admin.
fn by(action: AuditAction) -> WriteBy {
    WriteBy {
        project: None,
        audit: AuditDraft {
            at: Utc::now(),
            actor: None,
            action,
            source: "test".into(),
            details: json!({}),
        },
    }
}

async fn issue(store: &Arc<dyn KeyStore>, label: &str) -> NewKey {
    let key = new_key(label);
    store
        .insert(&key, &event(AuditAction::Issue, &key.id))
        .await
        .unwrap();
    key
}

async fn all_rows(store: &Arc<dyn KeyStore>) -> Vec<OutboxRow> {
    store.invalidations_after(0, 10_000).await.unwrap()
}

async fn writes_leave_rows_in_their_transaction(db: TestDb) {
    let store = db.store().await;
    let revoked = issue(&store, "r").await;
    let rotated = issue(&store, "o").await;
    let updated = issue(&store, "u").await;
    assert!(all_rows(&store).await.is_empty(), "issuing narrows nothing");

    let at = Utc::now();
    store
        .revoke(&revoked.id, at, "leaked", &by(AuditAction::Revoke))
        .await
        .unwrap();
    // Revoking again writes nothing, so it leaves no row either.
    store
        .revoke(&revoked.id, at, "again", &by(AuditAction::Revoke))
        .await
        .unwrap();
    let mut successor = new_key("o");
    successor.created_at = at;
    store
        .rotate(
            &rotated.id,
            at,
            at,
            &mut |_: &StoredKey| successor.clone(),
            &by(AuditAction::Rotate),
        )
        .await
        .unwrap();
    let changes = KeyChanges {
        scopes: Some(vec!["orders:write".into()]),
        ..Default::default()
    };
    store
        .update(&updated.id, &changes, at, &by(AuditAction::Update))
        .await
        .unwrap();
    // A write that fails (no such key) leaves nothing.
    assert!(
        store
            .revoke(&KeyId::generate(), at, "x", &by(AuditAction::Revoke))
            .await
            .is_err()
    );

    let rows = all_rows(&store).await;
    let digests: Vec<Digest> = rows.iter().map(|r| r.digest).collect();
    assert_eq!(
        digests,
        vec![revoked.digest, rotated.digest, updated.digest],
        "one row per narrowing write, the rotated key's old digest, in order"
    );
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(rows.iter().all(|r| r.at == at.timestamp_micros()));

    let after_first = store.invalidations_after(rows[0].seq, 1).await.unwrap();
    assert_eq!(after_first, vec![rows[1]]);
    assert!(
        store
            .invalidations_after(rows[2].seq, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A tail seeded from a window starts before the first row in it.
    let start = store
        .invalidations_start(at - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(start, rows[0].seq - 1);
    let nothing_new = store
        .invalidations_start(at + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        nothing_new, rows[2].seq,
        "no row in the window: start at the end"
    );

    assert_eq!(
        store
            .prune_invalidations(at - Duration::seconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .prune_invalidations(at + Duration::seconds(1))
            .await
            .unwrap(),
        3
    );
    assert!(all_rows(&store).await.is_empty());
}
on_both_stores!(writes_leave_rows, writes_leave_rows_in_their_transaction);

/// Writers commit concurrently while a tail reads `seq > last`: the tail
/// must end with every row. (Without the outbox lock on Postgres a row
/// with a lower seq can become visible after a higher one and be skipped.)
async fn a_tail_running_beside_writers_misses_nothing(db: TestDb) {
    let store = db.store().await;
    let mut keys = Vec::new();
    for i in 0..40 {
        keys.push(issue(&store, &format!("k{i}")).await);
    }
    let tail = {
        let store = store.clone();
        tokio::spawn(async move {
            let (mut last, mut seen) = (0, HashSet::new());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while seen.len() < 40 && std::time::Instant::now() < deadline {
                for row in store.invalidations_after(last, 1000).await.unwrap() {
                    last = row.seq;
                    seen.insert(row.digest);
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            seen
        })
    };
    let writers: Vec<_> = keys
        .iter()
        .map(|key| {
            let (store, id) = (store.clone(), key.id.clone());
            tokio::spawn(async move {
                store
                    .revoke(&id, Utc::now(), "t", &by(AuditAction::Revoke))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = tail.await.unwrap();
    let all: HashSet<Digest> = keys.iter().map(|k| k.digest).collect();
    assert_eq!(seen.len(), 40, "the tail skipped rows");
    assert_eq!(seen, all);
}
on_both_stores!(
    tail_beside_writers,
    a_tail_running_beside_writers_misses_nothing
);
