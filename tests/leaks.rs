//! Leak reports: `POST /leaks/github` (GitHub's secret-scanning partner
//! format, signed by a stranger's own P-256 key configured as trusted) and
//! the ReportLeak RPC. A reported live key is revoked at once and denied by
//! another replica; an unsigned or badly signed report changes nothing.

mod common;

use std::time::{Duration, Instant};

use keyward::proto::v1 as pb;
use tonic::Code;

use common::{
    TestApp, TestDb,
    client::Api,
    config,
    leak_report::{self, KeysFile, Reporter, labels},
    redis::{namespace, shared},
};

const URL: &str = "https://github.com/someone/public/blob/main/.env";

async fn allowed(api: &mut Api, key: &str) -> bool {
    api.verify(key, &["orders:read"]).await.allowed
}

/// Verifies until `key` sits in the replica's L1 (a verify overlapping the
/// key's own "created" invalidation is not cached).
async fn warm(api: &mut Api, key: &str) {
    assert!(allowed(api, key).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(allowed(api, key).await);
}

/// Polls until `key` is denied on `api`; how long that took.
async fn time_to_denial(api: &mut Api, key: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if !allowed(api, key).await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still allowed after {limit:?}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

async fn with_leak_reports(db: &TestDb, keys: &KeysFile, extra: &[&str]) -> TestApp {
    let mut args = vec!["--leak-report-keys", keys.arg()];
    args.extend_from_slice(extra);
    TestApp::spawn_with(config(&db.url, &args), None).await
}

#[tokio::test]
async fn without_the_keys_flag_the_endpoint_does_not_exist() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let (key, _) = api.issue_key("acme", "svc", &["orders:read"]).await;
    let reporter = Reporter::new("stranger");
    let response = reporter
        .post(app.addr.port(), &leak_report::body(&[(&key, URL)]))
        .await;
    assert_eq!(response.status, 404, "{response:?}");
    assert!(allowed(&mut api, &key).await);
}

#[tokio::test]
async fn an_unreadable_or_untrusted_keys_file_stops_the_start() {
    let db = TestDb::sqlite();
    let bad = KeysFile::with_text(r#"{"public_keys": [{"key_identifier": "k", "key": "nope"}]}"#);
    for path in [bad.arg(), "/nonexistent/github-keys.json"] {
        let built =
            keyward::startup::Application::build(config(&db.url, &["--leak-report-keys", path]))
                .await;
        let error = format!("{:#}", built.err().expect("started with a bad keys file"));
        assert!(error.contains("leak-report keys file"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_report_revokes_a_live_key_on_every_replica_over_redis() {
    let (Some(db), Some(redis)) = (TestDb::postgres().await, shared().await) else {
        return;
    };
    reported_keys_are_denied_everywhere("redis", db, Some(redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_report_revokes_a_live_key_on_every_replica_over_postgres_notify() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    reported_keys_are_denied_everywhere("postgres", db, None).await;
}

/// Two replicas on one Postgres schema (and Redis namespace): a signed
/// report to A revokes the key, and B (whose L1 would keep it for a minute)
/// denies it through the bus. Prints the lag over 20 reports.
async fn reported_keys_are_denied_everywhere(bus: &str, db: TestDb, redis: Option<String>) {
    let reporter = Reporter::new("stranger-2026");
    let keys = KeysFile::trusting(&[&Reporter::new("retired"), &reporter]);
    let ns = namespace();
    let mut args = vec![
        "--namespace",
        &ns,
        "--l1-ttl",
        "60s",
        "--max-staleness",
        "120s",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    if let Some(url) = &redis {
        args.extend(["--redis-url", url]);
    }
    let a = with_leak_reports(&db, &keys, &args).await;
    let b = with_leak_reports(&db, &keys, &args).await;
    assert_eq!(b.state.lookup.bus_kind(), bus);
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut lags = Vec::new();
    let mut last = String::new();
    for i in 0..20 {
        let (key, id) = ca
            .issue_key("acme", &format!("svc{i}"), &["orders:read"])
            .await;
        warm(&mut cb, &key).await;
        let response = reporter
            .post(a.addr.port(), &leak_report::body(&[(&key, URL)]))
            .await;
        assert_eq!(labels(&response), ["true_positive"]);
        lags.push(time_to_denial(&mut cb, &key, Duration::from_secs(5)).await);
        assert!(
            !allowed(&mut ca, &key).await,
            "the reporting replica allows it"
        );
        last = id;
    }
    lags.sort();
    let (p50, max) = (lags[lags.len() / 2], lags[lags.len() - 1]);
    println!(
        "leak report → denial on the other replica, {bus} bus, over {} reports: p50 {:.2} ms, max {:.2} ms (goal < 100 ms: {})",
        lags.len(),
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        if max < Duration::from_millis(100) {
            "met"
        } else {
            "missed"
        }
    );
    assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
    assert!(
        max < Duration::from_secs(1),
        "max {max:?}: past the revocation bound"
    );

    // Visible as a leak: the reason, an audit action of its own, a metric.
    let info = cb.get_id(&last).await;
    assert_eq!(info.status, pb::KeyStatus::Revoked as i32);
    assert_eq!(
        info.revoke_reason,
        format!("leaked: reported by github at {URL}")
    );
    let audit = ca
        .audit(pb::ListAuditEventsRequest {
            key_id: last.clone(),
            action: "revoke_leaked".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(audit.events.len(), 1, "{:?}", audit.events);
    let details: serde_json::Value = serde_json::from_str(&audit.events[0].details_json).unwrap();
    assert_eq!(details["reporter"], "github");
    assert_eq!(details["url"], URL);
    assert_eq!(details["source"], "content");
    assert!(audit.events[0].actor_key_id.is_empty());
    assert!(audit.events[0].source.starts_with("127.0.0.1:"));
    let metrics = a.scrape().await;
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("keyward_leaked_keys_revoked_total{reporter=\"github\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no github leak counter in:\n{metrics}"));
    assert!(counted >= 20.0, "{counted}");
}

#[tokio::test]
async fn reports_not_signed_by_a_trusted_key_change_nothing() {
    let db = TestDb::sqlite();
    let trusted = Reporter::new("trusted");
    let keys = KeysFile::trusting(&[&trusted]);
    let app = with_leak_reports(&db, &keys, &[]).await;
    let port = app.addr.port();
    let mut api = app.api().await;
    let (key, id) = api.issue_key("acme", "svc", &["orders:read"]).await;
    let body = leak_report::body(&[(&key, URL)]);

    // A stranger's key under the trusted identifier, and under its own.
    let stranger = Reporter::new("trusted");
    assert_eq!(stranger.post(port, &body).await.status, 401);
    let own = Reporter::new("stranger");
    assert_eq!(own.post(port, &body).await.status, 401);
    // A trusted signature over another body.
    let signature = trusted.sign(&body);
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 0x20;
    let response = leak_report::post(port, &tampered, Some("trusted"), Some(&signature)).await;
    assert_eq!(response.status, 401);
    // No signature, no identifier, garbage.
    for (key_id, signature) in [
        (None, None),
        (Some("trusted"), None),
        (None, Some(signature.as_str())),
        (Some("trusted"), Some("bm90IGEgc2lnbmF0dXJl")),
    ] {
        let response = leak_report::post(port, &body, key_id, signature).await;
        assert_eq!(response.status, 401, "{key_id:?} {signature:?}");
        assert!(!response.body.contains(&key), "the answer echoes the key");
    }
    assert!(
        allowed(&mut api, &key).await,
        "a refused report revoked the key"
    );
    assert_eq!(api.get_id(&id).await.status, pb::KeyStatus::Active as i32);

    // Signed but not a report; too large; not a POST.
    let not_json = b"{\"token\": \"x\"}";
    assert_eq!(trusted.post(port, not_json).await.status, 400);
    let huge = vec![b' '; (1 << 20) + 1];
    assert_eq!(trusted.post(port, &huge).await.status, 413);
    let get = common::http::http(port, "GET", leak_report::PATH, &[])
        .await
        .unwrap();
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    // Too many tokens: refused whole (the live key among them stays live),
    // and not as a failure a retry would cure.
    let mut many = vec![(key.as_str(), URL)];
    many.extend(std::iter::repeat_n(
        ("x", URL),
        keyward::admin::MAX_LEAKED_TOKENS,
    ));
    let response = trusted.post(port, &leak_report::body(&many)).await;
    assert_eq!(response.status, 400);
    assert!(response.body.contains("split"), "{}", response.body);
    assert!(!response.body.contains("retry"), "{}", response.body);
    assert!(allowed(&mut api, &key).await);
}

#[tokio::test]
async fn only_live_keys_of_this_deployment_are_true_positives() {
    let db = TestDb::sqlite();
    let reporter = Reporter::new("r");
    let keys = KeysFile::trusting(&[&reporter]);
    let app = with_leak_reports(&db, &keys, &[]).await;
    let port = app.addr.port();
    let mut api = app.api().await;
    let (live, _) = api.issue_key("acme", "live", &["orders:read"]).await;
    let (revoked, revoked_id) = api.issue_key("acme", "old", &["orders:read"]).await;
    api.revoke_id(&revoked_id, "retired").await;
    // A checksum-valid keyward key no deployment issued.
    let stranger = keyward::key::format::generate("acme").into_exposed();
    let random = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let body = leak_report::body(&[
        (random, URL),
        (&live, URL),
        (&stranger, URL),
        (&revoked, URL),
        (&live, "https://github.com/elsewhere"),
    ]);
    let response = reporter.post(port, &body).await;
    assert_eq!(
        labels(&response),
        [
            "false_positive",
            "true_positive",
            "false_positive",
            "false_positive",
            // The same leak seen again: still a true positive.
            "true_positive",
        ]
    );
    assert!(!allowed(&mut api, &live).await);
    let events = api
        .audit(pb::ListAuditEventsRequest {
            action: "revoke_leaked".into(),
            ..Default::default()
        })
        .await
        .events;
    assert_eq!(
        events.len(),
        1,
        "a second report of a revoked key wrote again"
    );
    // The key revoked for another reason keeps its reason.
    assert_eq!(api.get_id(&revoked_id).await.revoke_reason, "retired");
    // An empty report is answered with an empty list.
    assert!(labels(&reporter.post(port, b"[]").await).is_empty());
}

#[tokio::test]
async fn the_report_leak_rpc_has_the_same_semantics_for_admins() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let (acme, acme_id) = api.issue_key("acme", "svc", &["orders:read"]).await;
    let (other, _) = api.issue_key("globex", "svc", &["orders:read"]).await;
    let (acme_admin, _) = api.issue_key("acme", "admin", &["keyward:admin"]).await;
    let token = |t: &str| pb::LeakedToken {
        token: t.into(),
        r#type: "keyward_api_key".into(),
        url: "https://chat.example/c/42".into(),
        source: "chat".into(),
    };
    let request = pb::ReportLeakRequest {
        tokens: vec![token(&acme), token(&other), token("not a key")],
    };

    // Admin authentication as for every admin RPC.
    let refused = api.as_admin("").try_report_leak(request.clone()).await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
    // A project admin acts on its own project's keys only; the other
    // project's key is told apart from nothing.
    let verdicts = api
        .as_admin(&acme_admin)
        .report_leak(request)
        .await
        .verdicts;
    let got: Vec<i32> = verdicts.iter().map(|v| v.label).collect();
    let (tp, fp) = (
        pb::LeakLabel::TruePositive as i32,
        pb::LeakLabel::FalsePositive as i32,
    );
    assert_eq!(got, [tp, fp, fp]);
    assert!(!allowed(&mut api, &acme).await);
    assert!(allowed(&mut api, &other).await);
    let info = api.get_id(&acme_id).await;
    assert_eq!(
        info.revoke_reason,
        "leaked: reported by rpc at https://chat.example/c/42"
    );
    let events = api
        .audit(pb::ListAuditEventsRequest {
            key_id: acme_id,
            ..Default::default()
        })
        .await
        .events;
    assert_eq!(events[0].action, "revoke_leaked");
    assert!(!events[0].actor_key_id.is_empty(), "the reporting admin");

    // More than 1000 tokens is refused whole.
    let many = pb::ReportLeakRequest {
        tokens: vec![token("x"); 1001],
    };
    let refused = api.try_report_leak(many).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[test]
fn config_check_reads_the_keys_file() {
    let check = |path: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["config", "check", "--leak-report-keys", path])
            .env_clear()
            .env("KEYWARD_DATABASE_URL", "sqlite:never-created.db")
            .output()
            .unwrap()
    };
    let good = KeysFile::trusting(&[&Reporter::new("a"), &Reporter::new("b")]);
    let out = check(good.arg());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(", leak reports 2 keys"), "{stdout}");
    let bad = KeysFile::with_text(r#"{"public_keys": [{"key_identifier": "k", "key": "x"}]}"#);
    let out = check(bad.arg());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("key \"k\""), "{stderr}");
}
