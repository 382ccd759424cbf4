//! Telemetry of a real `keyward serve` process: spans exported over OTLP to a
//! collector running in this test, `/metrics` scraped, debug logs captured,
//! and all three searched for the keys used.

mod common;

use std::{collections::HashMap, process::Command};

use envoy_types::{
    ext_authz::v3::pb::CheckRequest,
    pb::envoy::service::auth::v3::{
        AttributeContext, attribute_context, authorization_client::AuthorizationClient,
    },
};
use keyward::proto::v1 as pb;
use opentelemetry_proto::tonic::trace::v1::Span;
use sha2::Digest as _;
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use common::{
    TestDb,
    client::Api,
    otlp::{attribute, start_collector, text},
    process::{BIN, ServerProcess},
};

async fn scrape(url: &str) -> String {
    // A minimal HTTP/1.1 GET: enough for a Prometheus text page.
    let address = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of one series (0 when absent).
fn series(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn traceparent(i: u32) -> (String, String, String) {
    let trace_id = format!("{:032x}", 0xabc0_0000_u128 + u128::from(i));
    let span_id = format!("{:016x}", 0x1000_u64 + u64::from(i));
    (format!("00-{trace_id}-{span_id}-01"), trace_id, span_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_traced_counted_and_logged_without_secrets() {
    let db = TestDb::sqlite();
    let (collector, collector_addr) = start_collector().await;
    let server = ServerProcess::start_with_env(
        &db,
        &["--metrics-listen", "127.0.0.1:0", "--log", "debug"],
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{collector_addr}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("OTEL_SERVICE_NAME", "keyward-test".into()),
        ],
    );
    let metrics = format!("http://{}/metrics", server.metrics.unwrap());
    let admin = String::from_utf8(
        Command::new(BIN)
            .args(["admin", "bootstrap"])
            .env("KEYWARD_DATABASE_URL", &db.url)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = Api::over(server.url(), channel.clone(), admin.clone());
    let (key, key_id) = client.issue_key("acme", "ci", &["orders:read"]).await;
    let unknown = keyward::key::format::generate("acme").into_exposed();

    let before = scrape(&metrics).await;
    // (presented key, required scope, expected decision, expected reason)
    let calls = [
        (key.as_str(), "orders:read", "allow", "ok"),
        (key.as_str(), "orders:read", "allow", "ok"),
        (key.as_str(), "orders:write", "deny", "insufficient_scope"),
        (unknown.as_str(), "orders:read", "deny", "unknown"),
        ("not-a-key", "orders:read", "deny", "malformed"),
    ];
    for (i, (presented, scope, decision, _)) in calls.iter().enumerate() {
        let (parent, _, _) = traceparent(i as u32);
        let mut request = Request::new(pb::VerifyRequest {
            key: (*presented).to_owned(),
            required_scopes: vec![(*scope).to_owned()],
            client_ip: String::new(),
        });
        request
            .metadata_mut()
            .insert("traceparent", MetadataValue::try_from(parent).unwrap());
        let response = client.grpc.verify(request).await.unwrap().into_inner();
        assert_eq!(response.allowed, *decision == "allow");
    }
    // The same through ext_authz: the trace context is in the checked
    // request's headers.
    let mut authz = AuthorizationClient::new(channel.clone());
    let checks = [
        (Some(key.as_str()), "allow", "ok"),
        (None, "deny", "missing"),
    ];
    for (i, (presented, _, _)) in checks.iter().enumerate() {
        let (parent, _, _) = traceparent(100 + i as u32);
        let mut headers = HashMap::from([("traceparent".to_string(), parent)]);
        if let Some(k) = presented {
            headers.insert("x-api-key".into(), (*k).to_owned());
        }
        let request = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(attribute_context::Request {
                    http: Some(attribute_context::HttpRequest {
                        method: "GET".into(),
                        path: "/orders".into(),
                        headers,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: HashMap::from([(
                    "keyward_scopes".to_string(),
                    "orders:read".to_string(),
                )]),
                ..Default::default()
            }),
        };
        authz.check(request).await.unwrap();
    }
    let after = scrape(&metrics).await;

    // Counters moved by exactly the calls made.
    for (decision, reason, count) in [
        ("allow", "ok", 2.0),
        ("deny", "insufficient_scope", 1.0),
        ("deny", "unknown", 1.0),
        ("deny", "malformed", 1.0),
    ] {
        let labels = [
            ("rpc", "verify"),
            ("decision", decision),
            ("reason", reason),
        ];
        let moved = series(&after, "keyward_decisions_total", &labels)
            - series(&before, "keyward_decisions_total", &labels);
        assert_eq!(moved, count, "{decision}/{reason}");
    }
    let total = |m: &str| series(m, "keyward_decisions_total", &[("rpc", "verify")]);
    assert_eq!(total(&after) - total(&before), calls.len() as f64);
    for (_, decision, reason) in checks {
        let labels = [("rpc", "check"), ("decision", decision), ("reason", reason)];
        let moved = series(&after, "keyward_decisions_total", &labels)
            - series(&before, "keyward_decisions_total", &labels);
        assert_eq!(moved, 1.0, "check {decision}/{reason}");
    }
    assert_eq!(
        series(
            &after,
            "keyward_decision_duration_seconds_count",
            &[("rpc", "verify")]
        ) - series(
            &before,
            "keyward_decision_duration_seconds_count",
            &[("rpc", "verify")]
        ),
        calls.len() as f64
    );
    for name in [
        "keyward_build_info",
        "keyward_cache_answers_total",
        "keyward_db_pool_connections",
        "keyward_l1_entries",
        "keyward_admin_actions_total",
    ] {
        assert!(after.contains(name), "{name} missing from /metrics");
    }

    // Stop: SIGTERM flushes the spans still batched.
    let (clean_exit, logs) = server.terminate();
    assert!(clean_exit);

    let spans = collector.spans.lock().unwrap().clone();
    let decisions: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "keyward.verify")
        .collect();
    assert_eq!(
        decisions.len(),
        calls.len(),
        "exactly one decision span per call"
    );
    for (i, (_, scope, decision, reason)) in calls.iter().enumerate() {
        let (_, trace_id, span_id) = traceparent(i as u32);
        let span = decisions
            .iter()
            .find(|s| hex::encode(&s.trace_id) == trace_id)
            .unwrap_or_else(|| panic!("no span in trace {trace_id}"));
        assert_eq!(
            hex::encode(&span.parent_span_id),
            span_id,
            "parented to the caller's span"
        );
        assert_eq!(text(span, "keyward.decision"), *decision);
        assert_eq!(text(span, "keyward.reason"), *reason);
        assert_eq!(text(span, "keyward.required_scopes"), *scope);
        assert_eq!(text(span, "rpc.system"), "grpc");
        assert_eq!(text(span, "rpc.method"), "Verify");
        let known = *reason == "ok" || *reason == "insufficient_scope";
        if known {
            assert_eq!(text(span, "keyward.key_id"), key_id);
            assert_eq!(text(span, "keyward.project"), "acme");
            assert!(["l1", "store"].contains(&text(span, "keyward.cache")));
        } else {
            assert!(attribute(span, "keyward.key_id").is_none());
        }
    }
    assert!(
        spans.iter().any(|s| s.name == "keyward.admin.issue"),
        "admin actions are traced"
    );

    // Decisions reach the debug log with the same fields.
    let decision_logs = logs
        .lines()
        .filter(|l| l.contains("\"target\":\"keyward::decision\""))
        .count();
    assert_eq!(decision_logs, calls.len() + checks.len());
    assert!(logs.contains(&format!("\"key_id\":\"{key_id}\"")));

    // No key, secret or digest anywhere: attributes, metrics, logs.
    let mut exported = String::new();
    for span in &spans {
        exported.push_str(&span.name);
        for kv in &span.attributes {
            exported.push_str(&format!(" {}={:?}", kv.key, kv.value));
        }
        for event in &span.events {
            exported.push_str(&format!(" {:?}", event.attributes));
        }
    }
    for secret in [&key, &unknown, &admin] {
        let body = &secret[secret.len() - 49..secret.len() - 6];
        let digest = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        for (place, text) in [("spans", &exported), ("metrics", &after), ("logs", &logs)] {
            assert!(!text.contains(body), "a secret is in the {place}");
            assert!(!text.contains(&digest), "a digest is in the {place}");
        }
    }
}
