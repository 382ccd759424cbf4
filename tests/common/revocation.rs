//! Revocation lag between two replicas: revoke on one, poll the other
//! until it denies. Shared by the Redis Cluster, Sentinel and TLS tests.

use std::time::{Duration, Instant};

use keyward::proto::v1 as pb;

use super::client::Api;

pub async fn issue(api: &mut Api, label: &str) -> (String, String) {
    api.issue_key("acme", label, &["orders:read"]).await
}

pub async fn allowed(api: &mut Api, key: &str) -> bool {
    let request = pb::VerifyRequest {
        key: key.into(),
        required_scopes: vec!["orders:read".into()],
        client_ip: String::new(),
    };
    api.try_verify(request).await.unwrap().allowed
}

pub async fn revoke(api: &mut Api, id: &str) {
    let request = pb::RevokeRequest {
        key_id: id.into(),
        reason: "test".into(),
    };
    api.try_revoke(request).await.unwrap();
}

/// Verifies until each key sits in the replica's L1: a verify that
/// overlaps the key's own "created" invalidation is deliberately not cached.
pub async fn warm(client: &mut Api, keys: &[(String, String)]) {
    for _ in 0..2 {
        for (key, _) in keys {
            assert!(allowed(client, key).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until `key` is denied on `client`; the time it took. Panics past
/// `limit`.
pub async fn time_to_denial(client: &mut Api, key: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if !allowed(client, key).await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still allowed after {limit:?}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[derive(Debug)]
pub struct Lags {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for Lags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} revocations: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.count,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

pub fn lags(mut samples: Vec<Duration>) -> Lags {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    Lags {
        count: samples.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: samples[samples.len() - 1],
    }
}

/// Issues `n` keys on `a`, warms them into `b`'s L1, then revokes each on
/// `a` and times how long `b` still allows it. `a` must deny at once.
pub async fn measure(a: &mut Api, b: &mut Api, n: usize, limit: Duration) -> Lags {
    let mut keys = Vec::new();
    for i in 0..n {
        keys.push(issue(a, &format!("lag-{i}-{}", ulid::Ulid::new())).await);
    }
    warm(b, &keys).await;
    let mut samples = Vec::new();
    for (key, id) in &keys {
        revoke(a, id).await;
        assert!(
            !allowed(a, key).await,
            "the revoking replica denies at once"
        );
        samples.push(time_to_denial(b, key, limit).await);
    }
    lags(samples)
}
