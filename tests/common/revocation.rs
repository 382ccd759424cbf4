//! Revocation lag between two replicas: revoke on one, poll the other
//! until it denies. Shared by the Redis Cluster, Sentinel and TLS tests,
//! with the bounded Verify load the fault tests run beside it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use keyward::proto::v1 as pb;
use tokio::task::JoinHandle;

use super::{TestApp, TestDb, client::Api, config};

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
    revoke_each(a, b, &keys, limit).await
}

/// Revokes each key on `a` (which must deny it at once) and times how long
/// `b` still allows it; panics (a wrong allow) past `limit`.
pub async fn revoke_each(
    a: &mut Api,
    b: &mut Api,
    keys: &[(String, String)],
    limit: Duration,
) -> Lags {
    let mut samples = Vec::new();
    for (key, id) in keys {
        revoke(a, id).await;
        assert!(
            !allowed(a, key).await,
            "the revoking replica denies at once"
        );
        samples.push(time_to_denial(b, key, limit).await);
    }
    lags(samples)
}

/// Two keyward replicas on one store and one Redis `url`, in namespace
/// `ns`, with the Redis timeout given: the pair the fault tests revoke on.
pub async fn replicas(db: &TestDb, url: &str, ns: &str, timeout: &str) -> (TestApp, TestApp) {
    let args = [
        "--namespace",
        ns,
        "--redis-url",
        url,
        "--redis-timeout",
        timeout,
        "--l1-ttl",
        "60s",
        "--max-staleness",
        "120s",
    ];
    let a = TestApp::spawn_with(config(&db.url, &args), None).await;
    let b = TestApp::spawn_with(config(&db.url, &args), None).await;
    assert_eq!(b.state.lookup.bus_kind(), "redis");
    (a, b)
}

/// Verify load in the background, bounded by a total number of calls and
/// a time: one task per (client, key), each counting the live key's denials.
pub struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    denied: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(work: Vec<(Api, String)>, max_calls: usize, max_time: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (calls, denied) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = work
            .into_iter()
            .map(|(mut client, key)| {
                let (stop, calls, denied) = (stop.clone(), calls.clone(), denied.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    while !stop.load(Ordering::Relaxed)
                        && calls.fetch_add(1, Ordering::Relaxed) < max_calls
                        && started.elapsed() < max_time
                    {
                        if !allowed(&mut client, &key).await {
                            denied.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            calls,
            denied,
            tasks,
        }
    }

    /// Stops the load and waits for it: (calls made, live keys denied).
    pub async fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.calls.load(Ordering::Relaxed),
            self.denied.load(Ordering::Relaxed),
        )
    }
}
