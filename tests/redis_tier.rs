//! The Redis tier, the invalidation bus and the failure policy, with two
//! keyward replicas (separate L1s, random ports) sharing real Postgres and
//! Redis.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use keyward::proto::v1 as pb;
use tonic::Code;

use common::{
    TestApp, TestDb,
    client::Api,
    config,
    counting::CountingStore,
    proxy::Proxy,
    redis::{OwnRedis, namespace, shared},
    revocation::{allowed, issue, measure, time_to_denial},
};

async fn verify(api: &mut Api, key: &str) -> Result<pb::VerifyResponse, tonic::Status> {
    let request = pb::VerifyRequest {
        key: key.into(),
        required_scopes: vec!["orders:read".into()],
        client_ip: String::new(),
    };
    api.try_verify(request).await
}

async fn revoke(api: &mut Api, id: &str) -> Result<(), tonic::Status> {
    let request = pb::RevokeRequest {
        key_id: id.into(),
        reason: "test".into(),
    };
    api.try_revoke(request).await.map(|_| ())
}

/// Verifies until `key` sits in the replica's L1: a verify that overlaps the
/// key's own "created" invalidation is deliberately not cached.
async fn warm(client: &mut Api, keys: impl IntoIterator<Item = &String>) {
    let keys: Vec<&String> = keys.into_iter().collect();
    for key in &keys {
        assert!(allowed(client, key).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for key in &keys {
        assert!(allowed(client, key).await);
    }
}

/// Revoke 200 keys on A; B (whose L1 would keep them for a minute) must deny
/// each via the bus. Prints p50/p99 of the lag.
async fn revocation_lag(bus_label: &str, db: TestDb, redis: Option<String>) {
    let ns = namespace();
    let mut args = vec![
        "--namespace",
        &ns,
        "--l1-ttl",
        "60s",
        "--max-staleness",
        "120s",
    ];
    if let Some(url) = &redis {
        args.extend(["--redis-url", url]);
    }
    let a = TestApp::spawn_with(config(&db.url, &args), None).await;
    let b = TestApp::spawn_with(config(&db.url, &args), None).await;
    assert_eq!(b.state.lookup.bus_kind(), bus_label);
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    // Let both replicas subscribe before the first write.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lags = measure(&mut ca, &mut cb, 200, Duration::from_secs(5)).await;
    let p99 = lags.p99;
    println!(
        "revocation lag over {lags}, {bus_label} bus (goal p99 < 100 ms: {})",
        if p99 < Duration::from_millis(100) {
            "met"
        } else {
            "missed"
        }
    );
    // B's L1 TTL is a minute: anything near a second means the bus failed.
    assert!(
        p99 < Duration::from_secs(1),
        "p99 {p99:?}: invalidations are not arriving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_other_replica_over_redis() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    revocation_lag("redis", db, Some(redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_other_replica_over_postgres_notify() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    revocation_lag("postgres", db, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_bus_cut_a_revocation_reaches_b_within_the_bound() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    let redis_addr = redis.trim_start_matches("redis://").parse().unwrap();
    let proxy = Proxy::start(redis_addr).await;
    let via_proxy = format!("redis://{}", proxy.addr);
    let ns = namespace();
    let common = ["--namespace", &ns, "--l1-ttl", "60s"];
    let a = TestApp::spawn_with(
        config(&db.url, &[&common[..], &["--redis-url", &redis]].concat()),
        None,
    )
    .await;
    let b = TestApp::spawn_with(
        config(
            &db.url,
            &[&common[..], &["--redis-url", &via_proxy]].concat(),
        ),
        None,
    )
    .await;
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    let (key, id) = issue(&mut ca, "ci").await;
    warm(&mut cb, [&key]).await;

    proxy.cut();
    revoke(&mut ca, &id).await.unwrap();
    let started = Instant::now();
    assert!(!allowed(&mut ca, &key).await, "A denies at once");
    // B, cut off from the bus, learns it from the outbox.
    time_to_denial(&mut cb, &key, Duration::from_secs(3)).await;
    let lag = started.elapsed();
    println!(
        "bus cut: B denied the revoked key {:.0} ms after the revoke (revocation bound 1000 ms)",
        lag.as_secs_f64() * 1e3
    );
    assert!(lag <= Duration::from_secs(1), "{lag:?}");

    // Known keys keep working on B while its Redis is unreachable.
    let (other, _) = issue(&mut ca, "other").await;
    assert!(allowed(&mut cb, &other).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_keeps_answers_correct() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(mut redis) = OwnRedis::start().await else {
        return;
    };
    let ns = namespace();
    let args = [
        "--namespace",
        &ns,
        "--redis-url",
        &redis.url,
        "--l1-ttl",
        "1s",
    ];
    let a = TestApp::spawn_with(config(&db.url, &args), None).await;
    let b = TestApp::spawn_with(config(&db.url, &args), None).await;
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    let (k1, id1) = issue(&mut ca, "k1").await;
    let (k2, _) = issue(&mut ca, "k2").await;
    warm(&mut cb, [&k1, &k2]).await;

    redis.kill();
    for client in [&mut ca, &mut cb] {
        assert!(allowed(client, &k1).await);
        assert!(allowed(client, &k2).await);
    }
    // Writes go on; A evicts at once, B (its bus gone) within its L1 TTL.
    revoke(&mut ca, &id1).await.unwrap();
    assert!(!allowed(&mut ca, &k1).await);
    time_to_denial(&mut cb, &k1, Duration::from_secs(3)).await;
    let (k3, _) = issue(&mut ca, "k3").await;
    assert!(
        allowed(&mut cb, &k3).await,
        "a key issued after the crash is read from Postgres"
    );
    let unknown = keyward::key::format::generate("acme");
    let response = verify(&mut cb, unknown.expose()).await.unwrap();
    assert_eq!(response.reason, pb::Reason::Unknown as i32);
    // Many calls with Redis gone stay correct (and do not each wait for it).
    let started = Instant::now();
    for _ in 0..200 {
        assert!(allowed(&mut cb, &k2).await);
        assert!(!allowed(&mut cb, &k1).await);
    }
    println!(
        "400 Verify calls with Redis down took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_answers_known_keys_only_within_max_staleness() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(
        via_proxy, db.url,
        "the test database URL must name 127.0.0.1:5432"
    );
    let ns = namespace();
    let args = [
        "--namespace",
        &ns,
        "--redis-url",
        &redis,
        "--l1-ttl",
        "500ms",
        "--redis-ttl",
        "500ms",
        "--max-staleness",
        "4s",
        "--lookup-timeout",
        "200ms",
        "--database-timeout",
        "500ms",
    ];
    let a = TestApp::spawn_with(config(&via_proxy, &args), None).await;
    let mut client = a.api().await;
    let mut keys = Vec::new();
    for i in 0..5 {
        keys.push(issue(&mut client, &format!("k{i}")).await);
    }
    for (key, _) in &keys {
        assert!(allowed(&mut client, key).await);
    }
    let confirmed = Instant::now();

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(800)).await; // past both TTLs
    for (key, _) in &keys {
        assert!(
            allowed(&mut client, key).await,
            "recently confirmed keys are still answered"
        );
    }

    // Writes fail UNAVAILABLE and report nothing else.
    let request = pb::IssueRequest {
        project: "acme".into(),
        label: "new".into(),
        ..Default::default()
    };
    assert_eq!(
        client.try_issue(request).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(
        revoke(&mut client, &keys[0].1).await.unwrap_err().code(),
        Code::Unavailable
    );

    // Never-seen keys are never allowed.
    let (mut allows, mut unavailable) = (0, 0);
    for _ in 0..10_000 {
        let key = keyward::key::format::generate("acme");
        match verify(&mut client, key.expose()).await {
            Ok(response) if response.allowed => allows += 1,
            Ok(_) => {}
            Err(status) if status.code() == Code::Unavailable => unavailable += 1,
            Err(status) => panic!("unexpected {status:?}"),
        }
    }
    println!("postgres cut: 10000 never-seen keys: {allows} allowed, {unavailable} UNAVAILABLE");
    assert_eq!(allows, 0);

    // Past max staleness, known keys are unavailable too.
    let wait = Duration::from_millis(4300).saturating_sub(confirmed.elapsed());
    tokio::time::sleep(wait).await;
    let status = verify(&mut client, &keys[1].0).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    // The revoke that failed above did not happen.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match verify(&mut client, &keys[0].0).await {
            Ok(response) => {
                assert!(
                    response.allowed,
                    "the failed revoke must not have committed"
                );
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(status) => panic!("store did not come back: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_replica_reads_warmed_keys_from_redis_not_postgres() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    let ns = namespace();
    let args = ["--namespace", &ns, "--redis-url", &redis];
    let a = TestApp::spawn_with(config(&db.url, &args), None).await;
    let mut ca = a.api().await;
    let mut keys = Vec::new();
    for i in 0..100 {
        keys.push(issue(&mut ca, &format!("k{i}")).await.0);
    }
    for key in &keys {
        assert!(
            allowed(&mut ca, key).await,
            "A reads Postgres and fills Redis"
        );
    }

    let store = CountingStore::new(db.store().await);
    let b = TestApp::spawn_with(config(&db.url, &args), Some(store.clone())).await;
    let mut cb = b.api_with(&ca.admin).await;
    let before = store.lookups();
    for key in &keys {
        assert!(allowed(&mut cb, key).await);
    }
    println!(
        "cold replica: {} Postgres reads for {} warmed keys",
        store.lookups() - before,
        keys.len()
    );
    assert_eq!(store.lookups() - before, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_keys_reaches_postgres_once_per_digest() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    let ns = namespace();
    let args = [
        "--namespace",
        &ns,
        "--redis-url",
        &redis,
        "--l1-negative-ttl",
        "60s",
        "--redis-negative-ttl",
        "60s",
    ];
    let store_a = CountingStore::new(db.store().await);
    let store_b = CountingStore::new(db.store().await);
    let a = TestApp::spawn_with(config(&db.url, &args), Some(store_a.clone())).await;
    let b = TestApp::spawn_with(config(&db.url, &args), Some(store_b.clone())).await;
    let keys: Arc<Vec<String>> = Arc::new(
        (0..500)
            .map(|_| keyward::key::format::generate("acme").into_exposed())
            .collect(),
    );

    let flood = |app_client: Api| {
        let keys = keys.clone();
        async move {
            let mut tasks = Vec::new();
            for worker in 0..8 {
                let (keys, mut client) = (keys.clone(), app_client.clone());
                tasks.push(tokio::spawn(async move {
                    // Every worker sends every key, in a different order.
                    for i in 0..keys.len() {
                        let key = &keys[(i * 7 + worker * 61) % keys.len()];
                        let response = verify(&mut client, key).await.unwrap();
                        assert_eq!(response.reason, pb::Reason::Unknown as i32);
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    let before_a = store_a.lookups();
    flood(a.anonymous().await).await;
    let reads_a = store_a.lookups() - before_a;
    let before_b = store_b.lookups();
    flood(b.anonymous().await).await;
    let reads_b = store_b.lookups() - before_b;
    println!(
        "flood: 500 unknown digests × 8 callers per replica: {reads_a} Postgres reads on A, {reads_b} on B"
    );
    assert_eq!(reads_a, 500, "one read per digest");
    assert_eq!(reads_b, 0, "the second replica finds them in Redis");
}
