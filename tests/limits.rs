//! Rate limits, quotas and source restrictions through the real server:
//! two replicas sharing Redis and Postgres enforce one limit together.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use keyward::proto::v1 as pb;

use common::{
    TestApp, TestDb,
    client::{Api, reason},
    config,
    redis::{namespace, shared},
};

fn rate(limit: u32, burst: u32) -> pb::RateLimit {
    pb::RateLimit {
        limit,
        period: Some(pbjson_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        burst,
    }
}

fn quota(limit: i64) -> pb::Quota {
    pb::Quota {
        limit,
        period: pb::quota::Period::Day as i32,
        ..Default::default()
    }
}

/// Issues `request` as an `acme` key under a fresh label.
async fn issue(api: &mut Api, request: pb::IssueRequest) -> String {
    let request = pb::IssueRequest {
        project: "acme".into(),
        label: format!("k-{}", ulid::Ulid::new()),
        ..request
    };
    api.issue(request).await.key
}

/// Two replicas on one Postgres schema and one Redis namespace. The Redis
/// timeout is generous: these tests are about shared limits with Redis up,
/// and a debug build on a loaded machine can stall a call past the 100 ms
/// default, which would (correctly) fall back to per-replica limits.
async fn two_replicas(db: &TestDb, redis: &str) -> (TestApp, TestApp) {
    let ns = namespace();
    let args = [
        "--namespace",
        ns.as_str(),
        "--redis-url",
        redis,
        "--redis-timeout",
        "5s",
    ];
    let a = TestApp::spawn_with(config(&db.url, &args), None).await;
    let b = TestApp::spawn_with(config(&db.url, &args), None).await;
    (a, b)
}

/// Sends `calls` Verify requests as fast as `workers` concurrent callers
/// per replica can; returns (allowed, elapsed).
async fn flood(
    clients: &[Api],
    key: &str,
    calls: usize,
    workers: usize,
) -> (usize, Duration, Vec<pb::VerifyResponse>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let allowed = Arc::new(AtomicUsize::new(0));
    let denials = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..workers {
            let (mut client, key) = (client.clone(), key.to_owned());
            let (sent, allowed, denials) = (sent.clone(), allowed.clone(), denials.clone());
            tasks.push(tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::SeqCst) < calls {
                    let response = client.verify_from(&key, &[], "").await;
                    if response.allowed {
                        allowed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        denials.lock().unwrap().push(response);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let denials = std::mem::take(&mut *denials.lock().unwrap());
    (allowed.load(Ordering::SeqCst), elapsed, denials)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_two_replicas() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    let (a, b) = two_replicas(&db, &redis).await;
    let mut ca = a.api().await;
    let key = issue(
        &mut ca,
        pb::IssueRequest {
            rate_limit: Some(rate(100, 10)),
            ..Default::default()
        },
    )
    .await;

    let clients = [ca.clone(), b.api_with(&ca.admin).await];
    let (allowed, elapsed, denials) = flood(&clients, &key, 1000, 4).await;
    let bound = 10.0 + 100.0 * elapsed.as_secs_f64();
    println!(
        "rate limit 100/s burst 10, 1000 calls over two replicas in {:.3} s: {allowed} allowed, bound burst + rate × elapsed = {bound:.1} (+1% = {:.1})",
        elapsed.as_secs_f64(),
        bound * 1.01
    );
    assert!(
        allowed as f64 <= bound * 1.01,
        "{allowed} allowed > {bound}"
    );
    assert!(allowed >= 10, "at least the burst passes");
    assert!(denials.iter().all(|d| reason(d) == pb::Reason::RateLimited));
    let retry = denials[0]
        .retry_after
        .expect("a rate-limited call says when to retry");
    assert!(
        retry.seconds == 0 && retry.nanos > 0 && retry.nanos <= 10_000_000,
        "{retry:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_allows_exactly_its_limit_across_two_replicas() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    let (a, b) = two_replicas(&db, &redis).await;
    let mut ca = a.api().await;
    let key = issue(
        &mut ca,
        pb::IssueRequest {
            quota: Some(quota(500)),
            ..Default::default()
        },
    )
    .await;

    let clients = [ca.clone(), b.api_with(&ca.admin).await];
    let (allowed, elapsed, denials) = flood(&clients, &key, 2000, 8).await;
    println!(
        "quota 500, 2000 concurrent calls over two replicas in {elapsed:?}: {allowed} allowed"
    );
    assert_eq!(allowed, 500);
    assert_eq!(denials.len(), 1500);
    assert!(
        denials
            .iter()
            .all(|d| reason(d) == pb::Reason::QuotaExceeded && d.quota_remaining == Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_by_the_rate_limit_leaves_the_quota_untouched() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    let (a, b) = two_replicas(&db, &redis).await;
    let mut ca = a.api().await;
    let key = issue(
        &mut ca,
        pb::IssueRequest {
            // One call per 3 s: room for 50 refused calls on a slow machine.
            rate_limit: Some(pb::RateLimit {
                limit: 1,
                period: Some(pbjson_types::Duration {
                    seconds: 3,
                    nanos: 0,
                }),
                burst: 1,
            }),
            quota: Some(quota(100)),
            ..Default::default()
        },
    )
    .await;
    let first = ca.verify_from(&key, &[], "").await;
    assert!(first.allowed);
    assert_eq!(first.quota_remaining, Some(99));
    let mut cb = b.api_with(&ca.admin).await;
    for _ in 0..50 {
        let response = cb.verify_from(&key, &[], "").await;
        assert_eq!(reason(&response), pb::Reason::RateLimited);
        assert_eq!(response.quota_remaining, None);
    }
    tokio::time::sleep(Duration::from_millis(3050)).await;
    let next = ca.verify_from(&key, &[], "").await;
    assert!(next.allowed);
    assert_eq!(
        next.quota_remaining,
        Some(98),
        "50 refused calls spent nothing"
    );
}

#[tokio::test]
async fn without_redis_limits_hold_per_replica() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let key = issue(
        &mut api,
        pb::IssueRequest {
            rate_limit: Some(rate(1, 3)),
            quota: Some(quota(2)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        api.verify_from(&key, &[], "").await.quota_remaining,
        Some(1)
    );
    assert_eq!(
        api.verify_from(&key, &[], "").await.quota_remaining,
        Some(0)
    );
    let third = api.verify_from(&key, &[], "").await;
    assert_eq!(reason(&third), pb::Reason::QuotaExceeded);
    // Had the refused call advanced the rate limit, the burst of 3 would be
    // used up and this call rate limited.
    let fourth = api.verify_from(&key, &[], "").await;
    assert_eq!(reason(&fourth), pb::Reason::QuotaExceeded);
}

#[tokio::test]
async fn sources_outside_the_allowed_ranges_are_refused() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let request = pb::IssueRequest {
        allowed_cidrs: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
        ..Default::default()
    };
    let key = issue(&mut api, request).await;
    assert!(api.verify_from(&key, &[], "10.20.30.40").await.allowed);
    assert!(api.verify_from(&key, &[], "2001:db8::7").await.allowed);
    assert_eq!(
        reason(&api.verify_from(&key, &[], "192.168.1.1").await),
        pb::Reason::SourceNotAllowed
    );
    assert_eq!(
        reason(&api.verify_from(&key, &[], "").await),
        pb::Reason::SourceNotAllowed,
        "no address, no proof"
    );

    // Bad ranges name the field; update can lift the restriction.
    let bad = pb::IssueRequest {
        project: "acme".into(),
        label: "bad".into(),
        allowed_cidrs: vec!["nope".into()],
        ..Default::default()
    };
    let err = api.try_issue(bad).await.unwrap_err();
    assert!(
        err.message().starts_with("allowed_cidrs[0]:"),
        "{}",
        err.message()
    );
    let id = api.verify_from(&key, &[], "10.0.0.1").await.key_id;
    let update = pb::UpdateKeyRequest {
        key_id: id,
        update_mask: Some(pbjson_types::FieldMask {
            paths: vec!["allowed_cidrs".into()],
        }),
        ..Default::default()
    };
    let info = api.update(update).await.info.unwrap();
    assert!(info.allowed_cidrs.is_empty());
    assert!(api.verify_from(&key, &[], "192.168.1.1").await.allowed);
}

#[tokio::test]
async fn limits_are_shown_updated_and_checked() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let request = pb::IssueRequest {
        project: "acme".into(),
        label: "limited".into(),
        rate_limit: Some(rate(100, 10)),
        quota: Some(quota(500)),
        ..Default::default()
    };
    let issued = api.issue(request).await;
    let info = issued.info.unwrap();
    assert_eq!(info.rate_limit, Some(rate(100, 10)));
    assert_eq!(info.quota, Some(quota(500)));

    let bad_rate = pb::IssueRequest {
        project: "acme".into(),
        label: "x".into(),
        rate_limit: Some(rate(0, 1)),
        ..Default::default()
    };
    let err = api.try_issue(bad_rate).await.unwrap_err();
    assert!(
        err.message().starts_with("rate_limit.limit:"),
        "{}",
        err.message()
    );
    let bad_quota = pb::IssueRequest {
        project: "acme".into(),
        label: "x".into(),
        quota: Some(pb::Quota {
            limit: 5,
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = api.try_issue(bad_quota).await.unwrap_err();
    assert!(
        err.message().starts_with("quota.period:"),
        "{}",
        err.message()
    );

    // Removing the rate limit: the cached record is evicted, the key runs free.
    let update = pb::UpdateKeyRequest {
        key_id: info.id.clone(),
        update_mask: Some(pbjson_types::FieldMask {
            paths: vec!["rate_limit".into(), "quota".into()],
        }),
        quota: Some(quota(1)),
        ..Default::default()
    };
    let updated = api.update(update).await.info.unwrap();
    assert_eq!(updated.rate_limit, None);
    assert_eq!(updated.quota, Some(quota(1)));
    assert_eq!(
        api.verify_from(&issued.key, &[], "").await.quota_remaining,
        Some(0)
    );
    assert_eq!(
        reason(&api.verify_from(&issued.key, &[], "").await),
        pb::Reason::QuotaExceeded
    );
}
