//! The console in a real Chromium, driven by Playwright
//! (tests/browser/console.mjs): sign in, issue a key and read its secret
//! once, verify it over gRPC here, see the call in the key's chart after a
//! usage flush, rotate, revoke, read the audit log, sign out; a project
//! admin sees its own project only; a POST without the CSRF token is
//! refused; no admin key in any cookie, storage entry or URL. The script
//! also writes the README's screenshots (docs/console/*.png).
//!
//! Needs node, tests/browser/node_modules (`npm ci` there) and
//! /usr/bin/chromium; `.ci/deps` installs them.

mod common;

use std::{path::Path, process::Stdio, time::Duration};

use chrono::{DurationRound, TimeDelta, Utc};
use common::{TestApp, TestDb, client::reason, config};
use keyward::{key::KeyId, proto::v1 as pb, store::UsageCount};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser run, start to finish.
const RUN_LIMIT: Duration = Duration::from_secs(180);

fn browser_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether node, playwright-core and Chromium are here (else skipped, or
/// failed under CI).
fn tools() -> bool {
    if !common::runs("node", &["--version"]) {
        common::skip(
            "node is not installed",
            "apt-get install nodejs npm; .ci/deps does",
        );
        return false;
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        common::skip(
            "playwright-core is not installed",
            "run `npm ci` in tests/browser; .ci/deps does",
        );
        return false;
    }
    if !Path::new(CHROMIUM).exists() {
        common::skip(
            "Chromium is not installed",
            "apt-get install chromium; .ci/deps does",
        );
        return false;
    }
    true
}

/// A week of hourly traffic for `quiet` (steady) and `spiky` (steady, then
/// a burst in the last hour), written straight to the store as the usage
/// flusher would, so the charts and the unusual-keys list have history.
async fn seed_usage(app: &TestApp, steady: &pb::KeyInfo, spiky: &pb::KeyInfo) {
    let now = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    let mut counts = Vec::new();
    for hours_ago in 1..40 {
        let minute = now - TimeDelta::hours(hours_ago) - TimeDelta::minutes(5);
        let wave = 30 + (hours_ago % 12) * 4;
        for (key, calls, denied) in [(steady, wave, hours_ago % 3), (spiky, 20, 0)] {
            counts.push(UsageCount {
                key_id: key.id.parse::<KeyId>().unwrap(),
                project: key.project.clone(),
                minute,
                outcome: "ok",
                calls,
            });
            if denied > 0 {
                counts.push(UsageCount {
                    key_id: key.id.parse::<KeyId>().unwrap(),
                    project: key.project.clone(),
                    minute,
                    outcome: "rate_limited",
                    calls: denied,
                });
            }
        }
    }
    for minutes_ago in [5, 15, 25, 35] {
        let minute = now - TimeDelta::minutes(minutes_ago);
        for (outcome, calls) in [("ok", 150), ("insufficient_scope", 12)] {
            counts.push(UsageCount {
                key_id: spiky.id.parse::<KeyId>().unwrap(),
                project: spiky.project.clone(),
                minute,
                outcome,
                calls,
            });
        }
    }
    app.state.store.record_usage(&counts).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    if !tools() {
        return;
    }
    let db = TestDb::sqlite();
    let app = TestApp::spawn_with(config(&db.url, &["--usage-flush-interval", "1s"]), None).await;
    let admin = app.bootstrap().await;
    let mut api = app.api_with(&admin).await;
    let admin_id = api
        .list(pb::ListKeysRequest {
            project: "keyward".into(),
            ..Default::default()
        })
        .await
        .keys[0]
        .id
        .clone();
    let (_, other_id) = api
        .issue_key("billing", "invoices", &["invoices:read"])
        .await;
    let (shop_admin, _) = api
        .issue_key("shop", "shop-admin", &["keyward:admin"])
        .await;
    let steady = api
        .issue(common::client::issue_request(
            "shop",
            "search",
            &["catalog:read"],
        ))
        .await
        .info
        .unwrap();
    let spiky = api
        .issue(common::client::issue_request(
            "shop",
            "mobile-app",
            &["orders:read"],
        ))
        .await
        .info
        .unwrap();
    seed_usage(&app, &steady, &spiky).await;

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    std::fs::create_dir_all(&shots).unwrap();
    let mut child = Command::new("node")
        .arg("console.mjs")
        .current_dir(browser_dir())
        .env("KEYWARD_URL", app.url())
        .env("ADMIN_KEY", &admin)
        .env("PROJECT_ADMIN_KEY", &shop_admin)
        .env("OTHER_KEY_ID", &other_id)
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut to_script = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut anon = app.anonymous().await;
    let mut issued = None;
    let mut rotated = None;
    let mut steps = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let (word, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let answer = match word {
                "ISSUED" => {
                    let verdict = anon.verify(rest, &["orders:read"]).await;
                    assert!(
                        verdict.allowed,
                        "the console's new key verifies over gRPC: {verdict:?}"
                    );
                    issued = Some(rest.to_owned());
                    Some(format!("VERIFIED {}", verdict.key_id))
                }
                "ROTATED" => {
                    let new = anon.verify(rest, &["orders:read"]).await;
                    assert!(new.allowed, "{new:?}");
                    let old = anon
                        .verify(issued.as_deref().unwrap(), &["orders:read"])
                        .await;
                    assert!(
                        old.allowed,
                        "the old key works during the grace period: {old:?}"
                    );
                    rotated = Some(rest.to_owned());
                    Some(format!("VERIFIED {}", new.key_id))
                }
                "REVOKED" => {
                    let key = rotated.as_deref().unwrap();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    loop {
                        let verdict = anon.verify(key, &["orders:read"]).await;
                        if reason(&verdict) == pb::Reason::Revoked {
                            break;
                        }
                        assert!(tokio::time::Instant::now() < deadline, "{verdict:?}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Some("DENIED".to_owned())
                }
                "STEP" => {
                    steps.push(rest.to_owned());
                    None
                }
                "DONE" => break,
                _ => panic!("the browser script says: {line}"),
            };
            if let Some(answer) = answer {
                to_script
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .unwrap();
            }
        }
    };
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| {
            panic!("the browser run took over {RUN_LIMIT:?}; steps done: {steps:?}")
        });
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("node exits")
        .unwrap();
    assert!(status.success(), "console.mjs failed after {steps:?}");
    assert!(rotated.is_some(), "{steps:?}");

    // Every action the browser took is audited with the admin key as actor.
    let events = api
        .audit(pb::ListAuditEventsRequest {
            project: "shop".into(),
            ..Default::default()
        })
        .await
        .events;
    for action in ["issue", "rotate", "revoke"] {
        let event = events
            .iter()
            .find(|e| e.action == action && e.actor_key_id == admin_id)
            .unwrap_or_else(|| panic!("no {action} event by the console's admin: {events:?}"));
        assert!(event.source.starts_with("127.0.0.1:"), "{event:?}");
    }
    // The screenshots of a new secret show a key that is no longer valid.
    let first = anon.verify(issued.as_deref().unwrap(), &[]).await;
    assert!(first.allowed, "the first key is in its 1 h grace period");
    api.revoke_id(&first.key_id, "screenshot key").await;
    app.stop().await;
}
