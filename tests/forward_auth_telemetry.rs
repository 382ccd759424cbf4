//! Forward-auth decisions as telemetry: one `keyward.check` span each, with
//! `keyward.http_mode` and the caller's trace context, and Check's
//! decision metrics, from a real `keyward serve` process.

mod common;

use common::{
    TestDb,
    forward::{Mode, RULES, sub},
    http::http,
};

/// The value of one Prometheus series (0 when absent).
fn series(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_check_spans_with_the_mode_and_check_metrics() {
    use common::otlp::{attribute, start_collector, text};
    let db = TestDb::sqlite();
    let (collector, collector_addr) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyward.toml");
    std::fs::write(&config, RULES).unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let env = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ];
    let server = common::process::ServerProcess::start_with_env(&db, &args, &env);
    let mut api = server.api(&common::process::bootstrap(&db)).await;
    let (key, key_id) = api.issue_key("acme", "reader", &["orders:read"]).await;
    let port = server.addr.port();
    let metrics_port = server.metrics.unwrap().port();
    let scrape = || async move {
        http(metrics_port, "GET", "/metrics", &[])
            .await
            .unwrap()
            .body
    };

    let before = scrape().await;
    let calls = [
        (Mode::Envoy, "GET", 200, "allow"),
        (Mode::Nginx, "GET", 200, "allow"),
        (Mode::Forwarded, "GET", 200, "allow"),
        (Mode::Nginx, "DELETE", 403, "deny"),
    ];
    for (i, (mode, method, status, _)) in calls.iter().enumerate() {
        let parent = format!("00-{:032x}-{:016x}-01", 0xfa00 + i, 0x100 + i);
        let (m, path, mut headers) = sub(*mode, method, "/orders/1");
        headers.extend([("x-api-key", key.clone()), ("traceparent", parent)]);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = http(port, &m, &path, &headers).await.unwrap();
        assert_eq!(r.status, *status, "{mode:?} {r:?}");
    }
    let after = scrape().await;
    for (decision, reason, count) in [("allow", "ok", 3.0), ("deny", "insufficient_scope", 1.0)] {
        let labels = [("rpc", "check"), ("decision", decision), ("reason", reason)];
        let moved = series(&after, "keyward_decisions_total", &labels)
            - series(&before, "keyward_decisions_total", &labels);
        assert_eq!(moved, count, "{decision}/{reason}");
    }

    let (clean, _logs) = server.terminate();
    assert!(clean);
    let spans = collector.spans.lock().unwrap().clone();
    let checks: Vec<_> = spans.iter().filter(|s| s.name == "keyward.check").collect();
    assert_eq!(checks.len(), calls.len(), "one span per decision");
    for (i, (mode, _, _, decision)) in calls.iter().enumerate() {
        let trace_id = format!("{:032x}", 0xfa00 + i);
        let span = checks
            .iter()
            .find(|s| hex::encode(&s.trace_id) == trace_id)
            .unwrap_or_else(|| panic!("no span in trace {trace_id}"));
        assert_eq!(
            hex::encode(&span.parent_span_id),
            format!("{:016x}", 0x100 + i)
        );
        let name = format!("{mode:?}").to_ascii_lowercase();
        assert_eq!(text(span, "keyward.http_mode"), name);
        assert!(attribute(span, "rpc.system").is_none(), "not a gRPC call");
        assert_eq!(text(span, "keyward.decision"), *decision);
        assert_eq!(text(span, "keyward.key_id"), key_id);
    }
}
