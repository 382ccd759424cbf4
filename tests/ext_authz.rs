//! `envoy.service.auth.v3.Authorization/Check` over real gRPC, as Envoy
//! calls it, against SQLite: answers, identity headers, stripping, route
//! rules, context extensions, observe mode, and failing closed. The same
//! behaviour through a real Envoy is in `tests/envoy.rs`.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use envoy_types::ext_authz::v3::pb::{CheckResponse, DeniedHttpResponse, HttpResponse};
use keyward::proto::v1 as pb;
use tonic::Code;

use common::{
    TestDb,
    check::{Keys, Req, check, denied, get, header, meta, ok, status, try_check},
    counting::CountingStore,
};

#[tokio::test]
async fn bad_keys_all_get_one_identical_401() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "", None).await;
    let (expiring, _) = keys
        .issue("expiring", &[], Some(Duration::from_secs(1)))
        .await;
    let (revoked, revoked_id) = keys.issue("revoked", &[], None).await;
    let mut client = keys.authz().await;
    assert!(
        ok(&check(&mut client, get("/").key(&revoked)).await)
            .headers_to_remove
            .contains(&"x-api-key".to_owned())
    );
    keys.revoke(&revoked_id).await;
    let unknown = keyward::key::format::generate("acme").into_exposed();
    let mut malformed = unknown.clone();
    malformed.replace_range(10..11, if &malformed[10..11] == "A" { "B" } else { "A" });
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let cases = [
        ("missing", get("/")),
        (
            "basic auth only",
            get("/").header("authorization", "Basic dXNlcjpwYXNz"),
        ),
        ("empty", get("/").key("")),
        ("malformed", get("/").key(&malformed)),
        (
            "garbage bearer",
            get("/").header("authorization", "Bearer not-a-key"),
        ),
        ("unknown", get("/").key(&unknown)),
        ("revoked", get("/").key(&revoked)),
        (
            "revoked bearer",
            get("/").header("authorization", format!("Bearer {revoked}")),
        ),
        ("expired", get("/").key(&expiring)),
    ];
    let mut answers = Vec::new();
    for (name, req) in cases {
        let response = check(&mut client, req).await;
        let d = denied(&response).clone();
        assert_eq!(status(&d), 401, "{name}");
        assert_eq!(
            meta(&response, "decision").as_deref(),
            Some("deny"),
            "{name}"
        );
        answers.push((name, d, meta(&response, "reason").unwrap()));
    }
    let first = &answers[0].1;
    for (name, d, _) in &answers {
        assert_eq!(d, first, "{name} differs from missing");
        assert!(!d.body.contains("acme_"), "{name}: body echoes a key");
    }
    assert_eq!(first.body, r#"{"error":"unauthorized"}"#);
    let hdrs: Vec<_> = first
        .headers
        .iter()
        .map(|h| h.header.as_ref().unwrap())
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        hdrs,
        [
            ("content-type", "application/json"),
            ("www-authenticate", r#"ApiKey realm="keyward""#)
        ]
    );
    let reasons: Vec<_> = answers.iter().map(|(_, _, r)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "missing",
            "missing",
            "missing",
            "malformed",
            "malformed",
            "unknown",
            "revoked",
            "revoked",
            "expired"
        ],
        "the reason reaches the metadata (for access logs), not the client"
    );
}

#[tokio::test]
async fn good_keys_pass_with_identity_and_without_the_secret() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "", None).await;
    let (key, id) = keys.issue("good", &["orders:*", "users:read"], None).await;
    let mut client = keys.authz().await;

    for (req, source) in [
        (get("/orders").key(&key), "x-api-key"),
        (
            get("/orders").header("authorization", format!("Bearer {key}")),
            "authorization",
        ),
        (
            get("/orders").header("authorization", format!("apikey {key}")),
            "authorization",
        ),
    ] {
        let response = check(&mut client, req.header("x-keyward-key-id", "key_forged")).await;
        let allowed = ok(&response);
        assert_eq!(header(allowed, "x-keyward-key-id"), Some(id.as_str()));
        assert_eq!(header(allowed, "x-keyward-project"), Some("acme"));
        assert!(
            allowed.headers.iter().all(|h| h.append_action == 2),
            "overwrite, never append: {allowed:?}"
        );
        assert_eq!(allowed.headers_to_remove, [source]);
        assert_eq!(meta(&response, "decision").as_deref(), Some("allow"));
        assert_eq!(meta(&response, "key_id"), Some(id.clone()));
        assert_eq!(meta(&response, "project").as_deref(), Some("acme"));
        assert_eq!(
            meta(&response, "scopes").as_deref(),
            Some("orders:*,users:read")
        );
        assert_eq!(meta(&response, "observe"), None, "only in observe mode");
        assert_eq!(
            meta(&response, "required_scopes"),
            None,
            "only when refused"
        );
        let text = format!("{response:?}");
        assert!(!text.contains(&key), "the answer never carries the key");
    }

    // Scopes from the route's context extensions.
    let need = |scopes: &'static str| get("/orders").key(&key).ctx("keyward_scopes", scopes);
    ok(&check(&mut client, need("orders:read, users:read")).await);
    let response = check(&mut client, need("orders:read,users:write")).await;
    let forbidden = denied(&response);
    assert_eq!(status(forbidden), 403);
    assert_eq!(forbidden.body, r#"{"error":"forbidden"}"#);
    assert_eq!(
        meta(&response, "reason").as_deref(),
        Some("insufficient_scope")
    );
    assert_eq!(
        meta(&response, "required_scopes").as_deref(),
        Some("orders:read,users:write")
    );
    assert_eq!(
        meta(&response, "key_id"),
        Some(id.clone()),
        "access logs see whose key was refused"
    );
}

const RULES: &str = r#"
[ext_authz]
query_param = "api_key"

[[ext_authz.routes]]
methods = ["POST", "PUT", "DELETE"]
path = "/orders/**"
scopes = ["orders:write"]

[[ext_authz.routes]]
path_prefix = "/orders"
scopes = ["orders:read"]

[[ext_authz.routes]]
path = "/admin/**"
scopes = ["admin:all"]
"#;

#[tokio::test]
async fn route_rules_pick_scopes_and_context_extensions_win() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (reader, _) = keys.issue("reader", &["orders:read"], None).await;
    let mut client = keys.authz().await;
    let code = |r: &CheckResponse| match &r.http_response {
        Some(HttpResponse::OkResponse(_)) => 200,
        Some(HttpResponse::DeniedResponse(d)) => status(d),
        _ => 0,
    };

    let cases = [
        (get("/orders/1").key(&reader), 200),
        (get("/orders/1").key(&reader).method("POST"), 403),
        (get("/orders").key(&reader).method("DELETE"), 403),
        (get("/admin/users").key(&reader), 403),
        (get("/public").key(&reader), 200),
        (get("/public"), 401),
        // The route's extension wins over the rules.
        (
            get("/admin/users")
                .key(&reader)
                .ctx("keyward_scopes", "orders:read"),
            200,
        ),
        (
            get("/public")
                .key(&reader)
                .ctx("keyward_scopes", "orders:write"),
            403,
        ),
        // Paths rules cannot be applied to safely are refused.
        (get("/public/../admin/users").key(&reader), 400),
        (get("/public//admin").key(&reader), 400),
        (get("/orders/%2e%2e/admin").key(&reader), 400),
        // The query string is not part of the path.
        (get("/orders/1?next=/admin/x").key(&reader), 200),
    ];
    for (i, (req, want)) in cases.into_iter().enumerate() {
        let path = req.path.clone();
        let response = check(&mut client, req).await;
        assert_eq!(code(&response), want, "case {i}: {path}");
    }

    // Query keys, enabled in this file, are stripped from the query.
    let response = check(&mut client, get(&format!("/orders/1?a=b&api_key={reader}"))).await;
    let allowed = ok(&response);
    assert_eq!(allowed.query_parameters_to_remove, ["api_key"]);
    assert!(
        allowed.headers_to_remove.is_empty()
            || !allowed.headers_to_remove.contains(&"x-api-key".to_owned())
    );
}

#[tokio::test]
async fn query_keys_are_ignored_unless_enabled() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "", None).await;
    let (key, _) = keys.issue("q", &[], None).await;
    let mut client = keys.authz().await;
    let response = check(&mut client, get(&format!("/x?api_key={key}"))).await;
    assert_eq!(status(denied(&response)), 401);
    assert_eq!(meta(&response, "reason").as_deref(), Some("missing"));
}

#[tokio::test]
async fn strip_credential_can_be_turned_off() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "[ext_authz]\nstrip_credential = false\n", None).await;
    let (key, _) = keys.issue("nostrip", &[], None).await;
    let mut client = keys.authz().await;
    let response = check(&mut client, get("/").key(&key)).await;
    assert!(ok(&response).headers_to_remove.is_empty());
}

#[tokio::test]
async fn observe_mode_allows_and_records_what_it_would_have_done() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "", None).await;
    let (reader, _) = keys.issue("reader", &["orders:read"], None).await;
    let mut client = keys.authz().await;

    // Per route: a bad key and a missing scope pass, unidentified.
    let observed = |req: Req| req.ctx("keyward_mode", "observe");
    for (req, reason) in [
        (observed(get("/").key("acme_nonsense")), "malformed"),
        (observed(get("/")), "missing"),
        (
            observed(get("/").key(&reader).ctx("keyward_scopes", "orders:write")),
            "insufficient_scope",
        ),
    ] {
        let response = check(&mut client, req.header("x-keyward-project", "forged")).await;
        let allowed = ok(&response);
        assert!(header(allowed, "x-keyward-key-id").is_none());
        for forged in ["x-keyward-key-id", "x-keyward-project"] {
            assert!(
                allowed.headers_to_remove.contains(&forged.to_owned()),
                "{forged}"
            );
        }
        assert_eq!(meta(&response, "decision").as_deref(), Some("would_deny"));
        assert_eq!(meta(&response, "reason").as_deref(), Some(reason));
        assert_eq!(meta(&response, "observe").as_deref(), Some("true"));
    }
    // A good key in observe mode is allowed and identified as usual.
    let response = check(&mut client, observed(get("/").key(&reader))).await;
    assert!(header(ok(&response), "x-keyward-key-id").is_some());
    assert_eq!(meta(&response, "decision").as_deref(), Some("allow"));
    // Unknown modes enforce.
    let response = check(&mut client, get("/").ctx("keyward_mode", "obsrve")).await;
    assert_eq!(status(denied(&response)), 401);

    // Globally, with a route opting back into enforcement.
    let db2 = TestDb::sqlite();
    let global = Keys::start(&db2, "[ext_authz]\nobserve = true\n", None).await;
    let mut client = global.authz().await;
    let response = check(&mut client, get("/")).await;
    assert_eq!(meta(&response, "decision").as_deref(), Some("would_deny"));
    ok(&response);
    let response = check(&mut client, get("/").ctx("keyward_mode", "enforce")).await;
    assert_eq!(status(denied(&response)), 401);
}

#[tokio::test]
async fn undecidable_checks_fail_closed_with_unavailable() {
    let db = TestDb::sqlite();
    let store = CountingStore::new(db.store().await);
    let mut keys = Keys::start(&db, "", Some(store.clone())).await;
    let (key, _) = keys.issue("cached", &[], None).await;
    let (cold, _) = keys.issue("cold", &[], None).await;
    let mut client = keys.authz().await;
    ok(&check(&mut client, get("/").key(&key)).await);

    store.fail_lookups.store(true, Ordering::SeqCst);
    let error = try_check(&mut client, get("/").key(&cold))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    // What keyward can decide without the store it still decides.
    ok(&check(&mut client, get("/").key(&key)).await);
    assert_eq!(
        status(denied(&check(&mut client, get("/").key("garbage")).await)),
        401
    );
    // Observe mode does not fail closed: it lets the request through.
    let response = check(
        &mut client,
        get("/").key(&cold).ctx("keyward_mode", "observe"),
    )
    .await;
    ok(&response);
    assert_eq!(meta(&response, "reason").as_deref(), Some("unavailable"));
}

#[tokio::test]
async fn a_bad_config_file_stops_startup_with_the_entry_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    std::fs::write(
        &path,
        "[[ext_authz.routes]]\npath_prefix = \"/a\"\nscopes = [\"ok\"]\n\n[[ext_authz.routes]]\nmethods = [\"GET\"]\npath = \"orders/**\"\nscopes = []\n",
    )
    .unwrap();
    let db = TestDb::sqlite();
    let config = common::config(&db.url, &["--config", path.to_str().unwrap()]);
    let error = match keyward::startup::Application::build(config).await {
        Ok(_) => panic!("started with a bad config file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("invalid config file"), "{error}");
    assert!(
        error.contains("ext_authz.routes[1] (rule 2, path \"orders/**\"): path: \"orders/**\" must start with `/`"),
        "{error}"
    );
}

fn denied_header<'a>(d: &'a DeniedHttpResponse, name: &str) -> Option<&'a str> {
    d.headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

#[tokio::test]
async fn limits_answer_429_with_when_to_retry_and_sources_403() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "[ext_authz]\nxff_trusted_hops = 1\n", None).await;
    let mut authz = keys.authz().await;
    let issue = |label: &str, request: pb::IssueRequest| pb::IssueRequest {
        project: "acme".into(),
        label: label.into(),
        ..request
    };
    let limited = issue(
        "limited",
        pb::IssueRequest {
            rate_limit: Some(pb::RateLimit {
                limit: 1,
                period: Some(pbjson_types::Duration {
                    seconds: 10,
                    nanos: 0,
                }),
                burst: 1,
            }),
            quota: Some(pb::Quota {
                limit: 100,
                period: pb::quota::Period::Day as i32,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let limited = keys.api.issue(limited).await.key;

    let first = check(&mut authz, get("/x").key(&limited)).await;
    let allowed = ok(&first);
    let remaining = allowed
        .response_headers_to_add
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == "x-keyward-quota-remaining")
        .map(|h| h.value.clone());
    assert_eq!(
        remaining.as_deref(),
        Some("99"),
        "the client learns what is left"
    );

    let second = check(&mut authz, get("/x").key(&limited)).await;
    let refused = denied(&second);
    assert_eq!(status(refused), 429);
    let retry: u64 = denied_header(refused, "retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (9..=10).contains(&retry),
        "one call per 10 s: retry in about 10 s, got {retry}"
    );
    assert_eq!(
        denied_header(refused, "ratelimit"),
        Some(format!("\"keyward\";r=0;t={retry}").as_str())
    );
    assert_eq!(meta(&second, "reason").as_deref(), Some("rate_limited"));

    let fenced = issue(
        "fenced",
        pb::IssueRequest {
            allowed_cidrs: vec!["203.0.113.0/24".into()],
            ..Default::default()
        },
    );
    let fenced = keys.api.issue(fenced).await.key;
    // With one trusted hop, the address that proxy appended counts.
    let inside = get("/x")
        .key(&fenced)
        .peer("10.0.0.1")
        .header("x-forwarded-for", "198.51.100.9, 203.0.113.5");
    ok(&check(&mut authz, inside).await);
    let outside = get("/x")
        .key(&fenced)
        .peer("203.0.113.5")
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.9");
    let response = check(&mut authz, outside).await;
    assert_eq!(status(denied(&response)), 403);
    assert_eq!(
        meta(&response, "reason").as_deref(),
        Some("source_not_allowed")
    );
    let no_header = get("/x").key(&fenced).peer("203.0.113.77");
    ok(&check(&mut authz, no_header).await);
}
