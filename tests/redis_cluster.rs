//! Redis Cluster: two keyward replicas over a private cluster of three
//! masters with a replica each. Revocations reach the other replica over
//! the sharded bus, a rate limit holds across both, killing a master under
//! load (its replica is promoted) lets no revoked key through past the
//! revocation bound, and resharding under traffic is followed without the
//! breaker opening (one node behind `redis://` is refused at start).

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use keyward::proto::v1 as pb;

use common::{
    TestApp, TestDb, config,
    redis::namespace,
    redis_cluster::Cluster,
    revocation::{Load, allowed, issue, measure, replicas, revoke_each, warm},
};

const BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_a_cluster_share_revocations_and_a_rate_limit() {
    let (Some(db), Some(cluster)) = (TestDb::postgres().await, Cluster::start().await) else {
        return;
    };
    let ns = namespace();
    // A generous timeout: a loaded debug build must not fall back to local
    // limits, which would (rightly) let the two replicas allow twice.
    let (a, b) = replicas(&db, &cluster.url(), &ns, "2s").await;
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lags = measure(&mut ca, &mut cb, 100, BOUND).await;
    println!(
        "cluster, sharded bus: revocation lag over {lags} (goal p99 < 100 ms: {})",
        if lags.p99 < Duration::from_millis(100) {
            "met"
        } else {
            "missed"
        }
    );
    assert!(lags.p99 < Duration::from_millis(100), "{lags}");

    let key = ca
        .issue(pb::IssueRequest {
            project: "acme".into(),
            label: format!("rl-{}", ulid::Ulid::new()),
            rate_limit: Some(pb::RateLimit {
                limit: 100,
                period: Some(pbjson_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                burst: 10,
            }),
            ..Default::default()
        })
        .await
        .key;
    let sent = Arc::new(AtomicUsize::new(0));
    let passed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in [&ca, &cb] {
        for _ in 0..4 {
            let (mut client, key, sent, passed) =
                (client.clone(), key.clone(), sent.clone(), passed.clone());
            tasks.push(tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::SeqCst) < 800 {
                    if client.verify_from(&key, &[], "").await.allowed {
                        passed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let passed = passed.load(Ordering::SeqCst);
    let bound = 10.0 + 100.0 * elapsed;
    println!(
        "cluster rate limit 100/s burst 10, 800 calls over two replicas in {elapsed:.3} s: {passed} allowed, bound {bound:.1}"
    );
    assert!(passed as f64 <= bound * 1.01, "{passed} allowed > {bound}");
    assert!(passed >= 10);
    assert!(a.state.lookup.l2().unwrap().is_up() && b.state.lookup.l2().unwrap().is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_master_under_load_lets_no_revoked_key_past_the_bound() {
    let (Some(db), Some(mut cluster)) = (TestDb::postgres().await, Cluster::start().await) else {
        return;
    };
    let ns = namespace();
    let (a, b) = replicas(&db, &cluster.url(), &ns, "250ms").await;
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut victims = Vec::new();
    for i in 0..20 {
        victims.push(issue(&mut ca, &format!("victim-{i}")).await);
    }
    let mut steady = Vec::new();
    for i in 0..5 {
        steady.push(issue(&mut ca, &format!("steady-{i}")).await);
    }
    warm(&mut cb, &victims).await;
    warm(&mut cb, &steady).await;

    // Bounded load on both replicas: at most 20 000 calls or 60 s.
    let mut work = Vec::new();
    for client in [&ca, &cb] {
        for (key, _) in steady.iter().take(2) {
            work.push((client.clone(), key.clone()));
        }
    }
    let load = Load::start(work, 20_000, Duration::from_secs(60));

    // The master of the bus's shard: the subscription must move with it.
    let channel = format!("{ns}:invalidations");
    let master = cluster.master_of(&channel).await;
    let killed_at = Instant::now();
    cluster.kill(master);
    // Panics (a wrong allow) if B still allows one past the bound.
    let during = revoke_each(&mut ca, &mut cb, &victims, BOUND).await;
    cluster.wait_ok().await;
    let promoted = killed_at.elapsed();
    println!(
        "cluster master {master} (bus shard) killed, replica promoted after {:.1} s; revocations while failing over: {during}, 0 allowed past the {BOUND:?} bound",
        promoted.as_secs_f64()
    );

    // After the fail-over, through the promoted replica.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = measure(&mut ca, &mut cb, 100, BOUND).await;
    let (calls, denied) = load.stop().await;
    println!(
        "after the fail-over: revocation lag over {after}; load: {calls} calls, {denied} wrongly denied"
    );
    assert_eq!(denied, 0, "a live key was denied");
    assert!(after.p99 < BOUND, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_under_traffic_is_followed_without_the_breaker_opening() {
    let (Some(db), Some(cluster)) = (TestDb::postgres().await, Cluster::start().await) else {
        return;
    };
    let (ns, url) = (namespace(), cluster.url());
    // One node behind a plain URL would answer MOVED to most keys: refused.
    let masters = cluster.masters().await;
    let one_node = format!("redis://127.0.0.1:{}", masters[0]);
    let error = keyward::startup::Application::build(config(&db.url, &["--redis-url", &one_node]))
        .await
        .err()
        .expect("a cluster node behind redis:// must be refused");
    let text = format!("{error:#}");
    println!("one cluster node behind redis://: {text}");
    assert!(text.contains("use redis+cluster://"), "{text}");
    // No L1: every verify asks Redis, so the moving slots are hit.
    let args = [
        "--namespace",
        &ns,
        "--redis-url",
        &url,
        "--l1-capacity",
        "0",
        "--redis-timeout",
        "2s",
    ];
    let app = TestApp::spawn_with(config(&db.url, &args), None).await;
    let mut api = app.api().await;
    let mut keys = Vec::new();
    for i in 0..100 {
        keys.push(issue(&mut api, &format!("reshard-{i}")).await);
    }
    let (from, to) = (masters[0], masters[1]);
    let done = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (mut api, done, keys) = (api.clone(), done.clone(), keys.clone());
        let l2 = app.state.lookup.l2().unwrap().clone();
        tokio::spawn(async move {
            let (mut calls, mut down) = (0usize, 0usize);
            let started = Instant::now();
            // Bounded: until the reshard is done, at most 100 000 calls or 120 s.
            while !done.load(Ordering::Relaxed)
                && calls < 100_000
                && started.elapsed() < Duration::from_secs(120)
            {
                let (key, _) = &keys[calls % keys.len()];
                assert!(
                    allowed(&mut api, key).await,
                    "a live key denied while resharding"
                );
                if !l2.is_up() {
                    down += 1;
                }
                calls += 1;
            }
            (calls, down)
        })
    };
    let started = Instant::now();
    cluster.reshard(from, to, 2000).await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (calls, down) = traffic.await.unwrap();
    println!(
        "resharding 2000 slots ({from} -> {to}) took {:.1} s under {calls} verifies: {down} calls saw Redis down",
        took.as_secs_f64()
    );
    assert_eq!(down, 0, "the breaker opened during a reshard");
    assert!(calls > 0);
    // And a rate-limited key (two keys in one script, one slot) still
    // counts in Redis: a third call within the burst of 2 is refused.
    let limited = api
        .issue(pb::IssueRequest {
            project: "acme".into(),
            label: format!("rl-{}", ulid::Ulid::new()),
            rate_limit: Some(pb::RateLimit {
                limit: 1,
                period: Some(pbjson_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                burst: 2,
            }),
            ..Default::default()
        })
        .await
        .key;
    let answers: Vec<bool> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(api.verify_from(&limited, &[], "").await.allowed);
        }
        out
    };
    assert_eq!(answers, [true, true, false], "{answers:?}");
}
