//! Usage analytics through the real server: the counts written to the store
//! equal the calls made, across replicas, and a crash loses at most one
//! flush interval.

mod common;

use std::{
    ffi::OsStr,
    time::{Duration, Instant},
};

use chrono::Utc;
use keyward::proto::v1 as pb;
use tonic::Code;

use common::{TestApp, TestDb, client::Api, config};

fn hour_ago() -> keyward::proto::timestamp::Timestamp {
    let at = Utc::now() - chrono::Duration::hours(1);
    keyward::proto::timestamp::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

/// Usage over the last hour unless `request` says otherwise.
async fn usage(api: &mut Api, request: pb::GetUsageRequest) -> pb::GetUsageResponse {
    let request = pb::GetUsageRequest {
        since: Some(hour_ago()),
        ..request
    };
    api.usage(request).await
}

/// (allowed, denied, denied by reason) summed over a series.
fn totals(response: &pb::GetUsageResponse) -> (i64, i64, std::collections::BTreeMap<String, i64>) {
    let mut reasons = std::collections::BTreeMap::new();
    for point in &response.series {
        for (reason, calls) in &point.denied_by_reason {
            *reasons.entry(reason.clone()).or_insert(0) += calls;
        }
    }
    (
        response.series.iter().map(|p| p.allowed).sum(),
        response.series.iter().map(|p| p.denied).sum(),
        reasons,
    )
}

/// Calls counted in the store's tables for project `acme`.
async fn stored_calls(db: &TestDb) -> i64 {
    let sql = "SELECT COALESCE(SUM(calls), 0) FROM (SELECT calls FROM usage_minute WHERE project = 'acme' \
               UNION ALL SELECT calls FROM usage_hour WHERE project = 'acme') u";
    if db.url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let sum: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT ({sql})::int8")))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        sum
    }
}

async fn counts_match_calls(db: TestDb) {
    // Flushed by the test only.
    let app = TestApp::spawn_with(config(&db.url, &["--usage-flush-interval", "1h"]), None).await;
    let mut client = app.api().await;
    let (a, a_id) = client.issue_key("acme", "a", &["orders:read"]).await;
    let (b, b_id) = client.issue_key("acme", "b", &["orders:read"]).await;

    for _ in 0..7 {
        assert!(client.verify(&a, &["orders:read"]).await.allowed);
    }
    for _ in 0..3 {
        assert!(!client.verify(&a, &["orders:write"]).await.allowed);
    }
    for _ in 0..2 {
        assert!(client.verify(&b, &["orders:read"]).await.allowed);
    }
    let revoke = pb::RevokeRequest {
        key_id: b_id.clone(),
        reason: "test".into(),
    };
    client.try_revoke(revoke).await.unwrap();
    for _ in 0..4 {
        assert!(!client.verify(&b, &["orders:read"]).await.allowed);
    }
    // Unknown keys belong to no key: not counted.
    for _ in 0..5 {
        let stranger = keyward::key::format::generate("acme");
        assert!(
            !client
                .verify(stranger.expose(), &["orders:read"])
                .await
                .allowed
        );
    }
    assert_eq!(stored_calls(&db).await, 0, "nothing is written per call");

    let rows = app.state.usage.flush().await.unwrap();
    assert!(
        rows >= 4,
        "at least one row per key and outcome, got {rows}"
    );
    assert_eq!(stored_calls(&db).await, 16);

    let bucket = Some(pbjson_types::Duration {
        seconds: 60,
        nanos: 0,
    });
    let by_key = usage(
        &mut client,
        pb::GetUsageRequest {
            key_id: a_id.clone(),
            bucket,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_key.bucket.unwrap().seconds, 60);
    assert!(
        (60..=62).contains(&by_key.series.len()),
        "an hour of minutes, zero-filled"
    );
    let (allowed, denied, reasons) = totals(&by_key);
    assert_eq!((allowed, denied), (7, 3));
    assert_eq!(reasons, [("INSUFFICIENT_SCOPE".to_owned(), 3)].into());
    assert!(by_key.busiest_keys.is_empty());

    let project = usage(
        &mut client,
        pb::GetUsageRequest {
            project: "acme".into(),
            ..Default::default()
        },
    )
    .await;
    let (allowed, denied, reasons) = totals(&project);
    assert_eq!((allowed, denied), (9, 7));
    assert_eq!(
        reasons,
        [
            ("INSUFFICIENT_SCOPE".to_owned(), 3),
            ("REVOKED".to_owned(), 4)
        ]
        .into()
    );
    let busiest: Vec<_> = project
        .busiest_keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.label.as_str(), k.allowed, k.denied))
        .collect();
    assert_eq!(
        busiest,
        [(a_id.as_str(), "a", 7, 3), (b_id.as_str(), "b", 2, 4)]
    );

    let info = client
        .get(pb::GetKeyRequest {
            key_id: a_id.clone(),
        })
        .await
        .info
        .unwrap();
    let used = info.last_used_at.expect("last_used_at is set by the flush");
    let now = Utc::now().timestamp();
    assert!(used.seconds <= now && used.seconds > now - 120, "{used:?}");

    // The roll-up folds minutes into hours without changing the totals,
    // then prunes them.
    let store = db.store().await;
    let future = Utc::now() + chrono::Duration::minutes(2);
    let long_ago = Utc::now() - chrono::Duration::days(400);
    let done = store.roll_up_usage(future, long_ago).await.unwrap();
    assert!(done.minutes >= 4 && done.hours_pruned == 0, "{done:?}");
    assert_eq!(stored_calls(&db).await, 16);
    // From the top of the previous hour: the hour row starts at the top of
    // the hour the calls were made in.
    let since = (Utc::now().timestamp() / 3600 - 1) * 3600;
    let hourly = pb::GetUsageRequest {
        project: "acme".into(),
        since: Some(keyward::proto::timestamp::Timestamp {
            seconds: since,
            nanos: 0,
        }),
        bucket: Some(pbjson_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        ..Default::default()
    };
    let hourly = client.usage(hourly).await;
    assert_eq!(hourly.series.len(), 2, "{hourly:?}");
    let (allowed, denied, _) = totals(&hourly);
    assert_eq!((allowed, denied), (9, 7));
    let done = store.roll_up_usage(future, future).await.unwrap();
    assert!(done.hours_pruned >= 4, "{done:?}");
    assert_eq!(stored_calls(&db).await, 0);

    // Bad requests name their field; an unknown key is NOT_FOUND.
    let both = pb::GetUsageRequest {
        key_id: a_id.clone(),
        project: "acme".into(),
        ..Default::default()
    };
    let status = client.try_usage(both).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("key_id"), "{status:?}");
    let odd_bucket = pb::GetUsageRequest {
        project: "acme".into(),
        bucket: Some(pbjson_types::Duration {
            seconds: 90,
            nanos: 0,
        }),
        ..Default::default()
    };
    let status = client.try_usage(odd_bucket).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let unknown = pb::GetUsageRequest {
        key_id: keyward::key::KeyId::generate().to_string(),
        ..Default::default()
    };
    let status = client.try_usage(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .grpc
        .get_usage(pb::GetUsageRequest {
            project: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await;
}

on_both_stores!(counts_equal_the_calls_made, counts_match_calls);

/// Two replicas counting calls to one key at once: after both stop (the
/// last flush runs after the drain), Postgres holds exactly the calls made.
#[tokio::test]
async fn two_replicas_write_every_call_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let args = ["--usage-flush-interval", "200ms"];
    let a = TestApp::spawn_with(config(&db.url, &args), None).await;
    let b = TestApp::spawn_with(config(&db.url, &args), None).await;
    let mut client = a.api().await;
    let (key, _) = client.issue_key("acme", "shared", &["orders:read"]).await;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, app) in [&a, &b].into_iter().enumerate() {
        for _ in 0..4 {
            let mut client = app.anonymous().await;
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..150 {
                    // Every fifth call of replica B asks for a scope the key lacks.
                    let scope = if i == 1 && n % 5 == 0 {
                        "orders:write"
                    } else {
                        "orders:read"
                    };
                    client.verify(&key, &[scope]).await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    a.stop().await;
    b.stop().await;
    let stored = stored_calls(&db).await;
    eprintln!("usage: 1,200 calls over two replicas in {elapsed:?}; stored {stored}");
    assert_eq!(stored, 1_200);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let denied: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(calls), 0)::int8 FROM usage_minute WHERE outcome = 'insufficient_scope'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(denied, 4 * 150 / 5);
}

/// A keyward process killed with SIGKILL loses at most the calls of its
/// last flush interval: everything counted before the previous flush is in
/// Postgres, and nothing is counted twice.
#[tokio::test]
async fn kill_9_loses_at_most_one_flush_interval() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let admin = common::process::bootstrap(&db);
    let mut server = common::envoy::Keyward::start_with(
        &db.url,
        &[OsStr::new("--usage-flush-interval"), OsStr::new("1s")],
    );
    let mut client = Api::connect(server.url(), admin).await;
    let (key, _) = client.issue_key("acme", "crash", &[]).await;

    for _ in 0..200 {
        client.verify(&key, &[]).await;
    }
    // Two intervals: at least one whole flush runs after the first 200.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for _ in 0..100 {
        client.verify(&key, &[]).await;
    }
    server.proc.kill();
    let stored = stored_calls(&db).await;
    eprintln!("usage: 300 calls, SIGKILL right after the last 100; stored {stored}");
    assert!(
        (200..=300).contains(&stored),
        "the first 200 calls must survive, and no call may count twice: {stored}"
    );
}

/// Every replica stopped at the same moment, each with calls counted on the
/// same keys: their last flushes lock the same rows at once. None may lose or
/// double a call (they used to deadlock, and the loser's batch was dropped).
#[tokio::test]
async fn replicas_stopped_together_lose_no_call() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    const KEYS: usize = 300;
    const ROUNDS: usize = 3;
    const REPLICAS: usize = 3;
    // No periodic flush during a round: the last flush writes everything.
    let args = ["--usage-flush-interval", "1h"];
    let setup = TestApp::spawn_with(config(&db.url, &args), None).await;
    let mut client = setup.api().await;
    let mut keys = Vec::new();
    for n in 0..KEYS {
        keys.push(
            client
                .issue_key("acme", &format!("k{n}"), &["orders:read"])
                .await
                .0,
        );
    }
    setup.stop().await;
    let baseline = stored_calls(&db).await;

    let mut made = 0i64;
    for round in 0..ROUNDS {
        let mut apps = Vec::new();
        for _ in 0..REPLICAS {
            apps.push(TestApp::spawn_with(config(&db.url, &args), None).await);
        }
        let mut tasks = Vec::new();
        for app in &apps {
            let mut client = app.anonymous().await;
            let keys = keys.clone();
            tasks.push(tokio::spawn(async move {
                // Each replica walks the keys from a different place, so the
                // rows of its batch are in a different order in memory too.
                let mut calls = 0i64;
                for key in keys.iter().cycle().skip(round * 7).take(KEYS) {
                    for scope in ["orders:read", "orders:read", "orders:write"] {
                        client.verify(key, &[scope]).await;
                        calls += 1;
                    }
                }
                calls
            }));
        }
        for task in tasks {
            made += task.await.unwrap();
        }
        // Every shutdown signal at once.
        futures_util::future::join_all(apps.into_iter().map(TestApp::stop)).await;
        let stored = stored_calls(&db).await - baseline;
        eprintln!("usage: round {round}: {made} calls made so far, {stored} stored");
        assert_eq!(stored, made, "round {round}: lost or doubled calls");
    }
}
