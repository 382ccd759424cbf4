//! `/metrics` as Prometheus's own linter reads it: every metric has help
//! text and a conventional name, and the series alerts take `rate()` of
//! exist at zero before the first failure.

mod common;

use std::process::Stdio;

use common::{TestApp, TestDb, config};
use tokio::io::AsyncWriteExt;

async fn server() -> (TestApp, TestDb) {
    let db = TestDb::sqlite();
    let app =
        TestApp::spawn_with(config(&db.url, &["--metrics-listen", "127.0.0.1:0"]), None).await;
    // One decision, so the decision series are there too.
    app.anonymous().await.verify("not-a-key", &[]).await;
    (app, db)
}

/// The value of the series `series` names exactly (name and labels as
/// rendered), or `None` when it is absent.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn promtool_finds_no_problem() {
    if !common::runs("promtool", &["--version"]) {
        common::skip(
            "`promtool` is not installed",
            "apt-get install prometheus, or run .ci/deps",
        );
        return;
    }
    let (app, _db) = server().await;
    let text = app.scrape().await;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n--- /metrics:\n{text}"
    );
    // Every metric family carries help text (promtool checks it too; this
    // says which one lacks it).
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no # HELP"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn error_and_lag_series_exist_at_zero_before_any_failure() {
    let (app, _db) = server().await;
    let text = app.scrape().await;
    for series in [
        "keyward_store_errors_total",
        "keyward_redis_errors_total",
        "keyward_usage_flush_errors_total",
        "keyward_usage_dropped_calls_total",
        "keyward_tls_handshake_failures_total",
        "keyward_stale_answers_total{tier=\"l1\"}",
        "keyward_stale_answers_total{tier=\"redis\"}",
        "keyward_dependency_trips_total{dependency=\"redis\"}",
        "keyward_dependency_trips_total{dependency=\"store\"}",
        "keyward_bus_publish_errors_total{bus=\"redis\"}",
        "keyward_bus_publish_errors_total{bus=\"postgres\"}",
        "keyward_tls_reloads_total{outcome=\"ok\"}",
        "keyward_tls_reloads_total{outcome=\"error\"}",
        "keyward_revocation_lag_seconds_count{bus=\"redis\"}",
        "keyward_revocation_lag_seconds_count{bus=\"postgres\"}",
    ] {
        assert_eq!(value(&text, series), Some(0.0), "{series} in:\n{text}");
    }
    // The old, vaguer names are gone.
    for old in ["keyward_store_seconds", "keyward_redis_seconds"] {
        assert!(!text.contains(&format!("{old}_")), "{old} still served");
    }
    app.stop().await;
}
