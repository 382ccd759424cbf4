//! Redis behind Sentinel: two keyward replicas over
//! `redis+sentinel://…/<master>` (a master, a replica, three sentinels,
//! all private). Revocations reach the other replica over the bus; a
//! `SENTINEL FAILOVER` and then a killed master, both under load, let no
//! revoked key through past the bound, and the bus and L2 follow the new
//! master without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{
    TestApp, TestDb, config,
    redis::namespace,
    redis_sentinel::Sentinels,
    revocation::{Load, issue, measure, replicas, revoke_each, warm},
};

const BOUND: Duration = Duration::from_secs(1);

async fn wait_l2_up(app: &TestApp) {
    let started = Instant::now();
    while !app.state.lookup.l2().unwrap().is_up() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "L2 did not come back on the new master"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_overs_under_load_keep_revocation_within_the_bound() {
    let (Some(db), Some(mut sentinels)) = (TestDb::postgres().await, Sentinels::start().await)
    else {
        return;
    };
    let ns = namespace();
    let url = sentinels.url();
    // A master name the sentinels do not know never heals: refused.
    let unknown = url.replace(common::redis_sentinel::MASTER_NAME, "nosuchmaster");
    let error = keyward::startup::Application::build(config(&db.url, &["--redis-url", &unknown]))
        .await
        .err()
        .expect("an unknown master name must be refused");
    let text = format!("{error:#}");
    println!("unknown master: {text}");
    assert!(text.contains("know no master"), "{text}");
    let (a, b) = replicas(&db, &url, &ns, "250ms").await;
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = measure(&mut ca, &mut cb, 100, BOUND).await;
    println!(
        "sentinel: revocation lag over {before} (goal p99 < 100 ms: {})",
        if before.p99 < Duration::from_millis(100) {
            "met"
        } else {
            "missed"
        }
    );
    assert!(before.p99 < Duration::from_millis(100), "{before}");

    let mut steady = Vec::new();
    for i in 0..4 {
        steady.push(issue(&mut ca, &format!("steady-{i}")).await);
    }
    warm(&mut cb, &steady).await;
    // Bounded load on both replicas: at most 20 000 calls or 90 s.
    let mut work = Vec::new();
    for (i, client) in [&ca, &cb].into_iter().enumerate() {
        for w in 0..2 {
            work.push((client.clone(), steady[i * 2 + w].0.clone()));
        }
    }
    let load = Load::start(work, 20_000, Duration::from_secs(90));

    for phase in ["SENTINEL FAILOVER", "master killed"] {
        let mut victims = Vec::new();
        for i in 0..10 {
            victims.push(issue(&mut ca, &format!("victim-{i}")).await);
        }
        warm(&mut cb, &victims).await;
        let started = Instant::now();
        let (old, new) = if phase == "master killed" {
            sentinels.kill_master().await
        } else {
            sentinels.failover().await
        };
        let switched = started.elapsed();
        let during = revoke_each(&mut ca, &mut cb, &victims, BOUND).await;
        wait_l2_up(&a).await;
        wait_l2_up(&b).await;
        // The sentinels are asked every second who is master.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = measure(&mut ca, &mut cb, 100, BOUND).await;
        println!(
            "sentinel, {phase}: master {old} -> {new} in {:.1} s; revocations right after: {during}; after the switch: {after}",
            switched.as_secs_f64()
        );
        assert!(
            after.p99 < Duration::from_millis(100),
            "the bus did not follow the master: {after}"
        );
        if phase == "SENTINEL FAILOVER" {
            sentinels.wait_replicated().await;
        }
    }
    let (calls, denied) = load.stop().await;
    println!("load: {calls} calls, {denied} wrongly denied");
    assert_eq!(denied, 0, "a live key was denied");
}
