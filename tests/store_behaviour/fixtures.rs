//! Keys, audit events and queries as the suite's tests build them.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use keyward::{
    key::{Digest, KeyId, format},
    limit::RateLimit,
    store::{
        AuditAction, AuditDraft, AuditEvent, AuditQuery, KeyStore, ListQuery, NewKey, WriteBy,
    },
};
use serde_json::json;

/// Stores keep microseconds; comparing at that precision keeps the suite
/// engine-neutral.
pub fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap()
}

pub fn new_key(project: &str, label: &str) -> NewKey {
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

pub fn event(action: AuditAction, key: &NewKey) -> AuditEvent {
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
pub fn by(action: AuditAction, project: &str) -> WriteBy {
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

pub async fn insert(store: &Arc<dyn KeyStore>, key: &NewKey) {
    store
        .insert(key, &event(AuditAction::Issue, key))
        .await
        .unwrap();
}

pub async fn audit_count(store: &Arc<dyn KeyStore>, id: &KeyId) -> usize {
    let query = AuditQuery {
        target: Some(id.clone()),
        limit: 100,
        ..Default::default()
    };
    store.list_audit(&query).await.unwrap().len()
}

pub fn list_query(project: &str) -> ListQuery {
    ListQuery {
        project: Some(project.into()),
        status: None,
        label: None,
        before: None,
        limit: 100,
        now: now(),
    }
}

/// Runs `futures` at once, each on its own task, so they race in the store.
pub async fn futures_join_all<F: std::future::Future + Send + 'static>(
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
