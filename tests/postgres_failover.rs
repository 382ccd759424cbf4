//! Postgres fail-over and read replicas, on a private primary and a
//! streaming replica (pg_basebackup -R) started for each test.
//!
//! - Two keyward replicas on a multi-host URL keep serving while the
//!   primary turns read-only (as a demoted primary does), the replica is
//!   promoted and the old primary stops, under bounded verify load: no
//!   revoked key is ever allowed, a write is reported done only if the new
//!   primary has it, writes succeed again within a bound, and revocation
//!   after the fail-over is measured.
//! - With --database-read-url, hot-path reads go to the replica while it
//!   keeps up; when its replay is paused (a lagging replica) a revoked key is
//!   never allowed from it, and a replica further behind than the
//!   revocation bound is not read.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    TestApp,
    client::{Api, issue_request, reason},
    config,
    pg_server::PgServer,
};
use keyward::proto::v1 as pb;
use sqlx::{PgPool, Row};
use tonic::Code;

async fn pool(server: &PgServer) -> PgPool {
    PgPool::connect(&server.url("")).await.unwrap()
}

async fn scalar_text(pool: &PgPool, sql: &'static str) -> Option<String> {
    sqlx::raw_sql(sql)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get::<Option<String>, _>(0)
        .unwrap()
}

/// Waits until `replica` has replayed everything `primary` wrote so far.
async fn caught_up(primary: &PgPool, replica: &PgPool) {
    let target = scalar_text(primary, "SELECT pg_current_wal_lsn()::text")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let behind: bool =
            sqlx::query_scalar("SELECT pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn()) > 0")
                .bind(&target)
                .fetch_one(replica)
                .await
                .unwrap();
        if !behind {
            return;
        }
        assert!(Instant::now() < deadline, "the replica did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Verifies `key` on `api` until it is denied; the time that took.
async fn until_denied(api: &mut Api, key: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(verdict) = api.try_verify(verify(key)).await
            && !verdict.allowed
        {
            assert_eq!(reason(&verdict), pb::Reason::Revoked, "{verdict:?}");
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still allowed after {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn verify(key: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        key: key.into(),
        required_scopes: vec!["orders:read".into()],
        client_ip: String::new(),
    }
}

/// Bounded verify load on one replica: a live key and a revoked one, until
/// `stop` or a bound on calls.
#[derive(Default)]
struct Load {
    live_allowed: AtomicU64,
    unavailable: AtomicU64,
    wrong_allows: AtomicU64,
    calls: AtomicU64,
}

fn load(
    api: Api,
    live: String,
    dead: String,
    stop: Arc<AtomicBool>,
) -> (Arc<Load>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Load::default());
    let counts = seen.clone();
    let task = tokio::spawn(async move {
        let mut api = api;
        for _ in 0..200_000 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            for (key, live) in [(&live, true), (&dead, false)] {
                counts.calls.fetch_add(1, Ordering::Relaxed);
                match api.try_verify(verify(key)).await {
                    Ok(v) if v.allowed && live => {
                        counts.live_allowed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(v) if v.allowed => {
                        counts.wrong_allows.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(status) => {
                        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                        counts.unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (seen, task)
}

/// Issues keys labelled `{prefix}-N` until one succeeds: (its id, how long
/// it took, ids of writes reported done). Each attempt either succeeds or
/// fails UNAVAILABLE.
async fn write_until_done(api: &mut Api, prefix: &str, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    for attempt in 0.. {
        let label = format!("{prefix}-{attempt}");
        match api
            .try_issue(issue_request("acme", &label, &["orders:read"]))
            .await
        {
            Ok(issued) => return (issued.info.unwrap().id, started.elapsed()),
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
        assert!(
            started.elapsed() < limit,
            "no write succeeded within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_host_url_follows_a_promoted_replica_without_a_restart() {
    let Some(bin) = common::pg_server::require() else {
        return;
    };
    let mut primary = PgServer::primary(&bin, &[]);
    let replica = PgServer::replica_of(&primary);
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, replica.port
    );
    // A short L1 TTL sends the load to the store through the fail-over.
    let flags = ["--database-timeout", "1s", "--l1-ttl", "100ms"];
    let a = TestApp::spawn_with(config(&url, &flags), None).await;
    let b = TestApp::spawn_with(config(&url, &flags), None).await;
    let admin = a.bootstrap().await;
    let mut api_a = a.api_with(&admin).await;
    let mut api_b = b.api_with(&admin).await;
    let (live, _) = api_a.issue_key("acme", "live", &["orders:read"]).await;
    let (dead, dead_id) = api_a.issue_key("acme", "dead", &["orders:read"]).await;
    let (later, later_id) = api_a.issue_key("acme", "later", &["orders:read"]).await;
    api_a.revoke_id(&dead_id, "before the fail-over").await;
    let (p, r) = (pool(&primary).await, pool(&replica).await);
    caught_up(&p, &r).await;

    let stop = Arc::new(AtomicBool::new(false));
    let loads = [
        load(api_a.clone(), live.clone(), dead.clone(), stop.clone()),
        load(api_b.clone(), live.clone(), dead.clone(), stop.clone()),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The primary turns read-only, as a demoted one does, and the replica
    // takes over; then the old primary stops.
    for sql in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::raw_sql(sql).execute(&p).await.unwrap();
    }
    p.close().await;
    let failed_over = Instant::now();
    replica.promote();
    let (first, took) = write_until_done(&mut api_a, "after", Duration::from_secs(10)).await;
    println!("first write after the fail-over: {took:?} after promote returned");
    primary.stop("INT");
    let (second, took_b) = write_until_done(&mut api_b, "stopped", Duration::from_secs(10)).await;
    println!("first write on the other replica after the old primary stopped: {took_b:?}");

    // Every write reported done is on the new primary.
    for id in [&first, &second] {
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM keys WHERE id = $1")
            .bind(id)
            .fetch_one(&r)
            .await
            .unwrap();
        assert_eq!(
            found, 1,
            "{id} was reported issued but is not on the new primary"
        );
    }

    // Revocation after the fail-over: revoked on A, measured on B.
    let verdict = api_b.verify(&later, &["orders:read"]).await;
    assert!(verdict.allowed, "{verdict:?}");
    api_a.revoke_id(&later_id, "after the fail-over").await;
    let lag = until_denied(&mut api_b, &later, Duration::from_secs(2)).await;
    println!("revocation lag on the other replica after the fail-over: {lag:?}");
    assert!(
        lag < Duration::from_secs(1),
        "{lag:?} is past the revocation bound"
    );
    let own = api_a.verify(&later, &["orders:read"]).await;
    assert!(!own.allowed, "the revoking replica allowed its revoked key");

    stop.store(true, Ordering::Release);
    for (seen, task) in loads {
        task.await.unwrap();
        let (calls, allowed, unavailable, wrong) = (
            seen.calls.load(Ordering::Relaxed),
            seen.live_allowed.load(Ordering::Relaxed),
            seen.unavailable.load(Ordering::Relaxed),
            seen.wrong_allows.load(Ordering::Relaxed),
        );
        println!(
            "load over {:?}: {calls} verifies, live allowed {allowed}, unavailable {unavailable}, wrong allows {wrong}",
            failed_over.elapsed()
        );
        assert_eq!(wrong, 0, "a revoked key was allowed");
        assert!(allowed > 0, "the live key was never allowed");
    }
    a.stop().await;
    b.stop().await;
}

/// Connections keyward's pool holds on `server`.
async fn keyward_sessions(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keyward'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_host_list_skips_hosts_that_are_down_and_standbys() {
    let Some(bin) = common::pg_server::require() else {
        return;
    };
    let primary = PgServer::primary(&bin, &[]);
    let replica = PgServer::replica_of(&primary);
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens on `down` (the listener is dropped); the standby
    // comes before the primary.
    let url = format!(
        "postgres://postgres@127.0.0.1:{down},127.0.0.1:{},127.0.0.1:{}/postgres",
        replica.port, primary.port
    );
    let app = TestApp::spawn_with(config(&url, &["--database-timeout", "2s"]), None).await;
    let mut api = app.api().await;
    let (key, _) = api.issue_key("acme", "listed", &["orders:read"]).await;
    assert!(api.verify(&key, &["orders:read"]).await.allowed);
    let (p, r) = (pool(&primary).await, pool(&replica).await);
    assert!(
        keyward_sessions(&p).await > 0,
        "no pool connection on the primary"
    );
    assert_eq!(
        keyward_sessions(&r).await,
        0,
        "a pool connection stayed on the standby"
    );
    app.stop().await;
}

/// Index and sequential scans of `keys` on `server`: reads it served.
async fn key_reads(pool: &PgPool) -> i64 {
    // Statistics are flushed by each backend at most once a second (and at
    // the end of a transaction when idle): ask for a fresh snapshot.
    sqlx::query_scalar(
        "SELECT coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0)::bigint \
         FROM pg_stat_user_tables WHERE relname = 'keys'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_read_replica_never_brings_a_revoked_key_back() {
    let Some(bin) = common::pg_server::require() else {
        return;
    };
    let primary = PgServer::primary(&bin, &[]);
    let replica = PgServer::replica_of(&primary);
    let read_url = replica.url("");
    // A short L1 TTL makes every verify below go to the store again.
    let flags = [
        "--database-read-url",
        read_url.as_str(),
        "--l1-ttl",
        "50ms",
        "--l1-negative-ttl",
        "50ms",
    ];
    let a = TestApp::spawn_with(config(&primary.url(""), &flags), None).await;
    let b = TestApp::spawn_with(config(&primary.url(""), &flags), None).await;
    let admin = a.bootstrap().await;
    let mut api_a = a.api_with(&admin).await;
    let mut api_b = b.api_with(&admin).await;
    let (p, r) = (pool(&primary).await, pool(&replica).await);

    // Keeping up, the replica answers the hot path.
    let (key, id) = api_a.issue_key("acme", "read", &["orders:read"]).await;
    caught_up(&p, &r).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = key_reads(&r).await;
    for _ in 0..20 {
        let verdict = api_b.verify(&key, &["orders:read"]).await;
        assert!(verdict.allowed, "{verdict:?}");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while key_reads(&r).await <= before {
        assert!(
            Instant::now() < deadline,
            "no hot-path read reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The replica stops replaying: it still shows the key as active.
    sqlx::raw_sql("SELECT pg_wal_replay_pause()")
        .execute(&r)
        .await
        .unwrap();
    let paused = Instant::now();
    api_a.revoke_id(&id, "while the replica lags").await;
    let own = api_a.verify(&key, &["orders:read"]).await;
    assert!(
        !own.allowed,
        "the revoking replica read its revoked key from the replica"
    );
    let lag = until_denied(&mut api_b, &key, Duration::from_secs(2)).await;
    println!("revocation lag on the other keyward with the read replica paused: {lag:?}");
    assert!(lag < Duration::from_secs(1), "{lag:?}");
    let stale: i64 =
        sqlx::query_scalar("SELECT count(*) FROM keys WHERE id = $1 AND revoked_at IS NULL")
            .bind(&id)
            .fetch_one(&r)
            .await
            .unwrap();
    assert_eq!(
        stale, 1,
        "the paused replica must still show the key active"
    );
    // Every verify reads the store again (L1 TTL 50 ms): never allowed.
    let mut denied = 0;
    while paused.elapsed() < Duration::from_secs(2) {
        for api in [&mut api_a, &mut api_b] {
            let verdict = api.verify(&key, &["orders:read"]).await;
            assert!(
                !verdict.allowed,
                "a lagging replica brought a revoked key back"
            );
            denied += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("{denied} verifies of the revoked key while the replica lagged: all denied");

    // Behind by more than the revocation bound, the replica is not read: a
    // key it has never seen verifies (from the primary).
    let (fresh, _) = api_a.issue_key("acme", "fresh", &["orders:read"]).await;
    let verdict = api_b.verify(&fresh, &["orders:read"]).await;
    assert!(verdict.allowed, "{verdict:?}");

    sqlx::raw_sql("SELECT pg_wal_replay_resume()")
        .execute(&r)
        .await
        .unwrap();
    caught_up(&p, &r).await;
    a.stop().await;
    b.stop().await;
}
