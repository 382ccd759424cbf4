//! Real gateways in front of `examples/envoy/echo_upstream.py`, asking a
//! `keyward serve` process (running `examples/envoy/keyward.toml`) with the
//! shipped configurations: nginx `auth_request` (`examples/nginx/`), Caddy
//! `forward_auth` (`examples/caddy/`) and Envoy 1.40's HTTP ext_authz over
//! h2c (`examples/envoy/envoy_http.yaml`). Every gateway must give the same
//! answers: see [`contract`].

mod common;

use std::time::Duration;

use common::{
    TestDb,
    client::Api,
    envoy::{self, Envoy, Keyward, Upstream},
    gateway::{self, Gateway},
    http::{HttpResponse, http},
};
use keyward::proto::v1 as pb;

/// keyward, its database and admin client, and the upstream.
struct Backend {
    _db: TestDb,
    keyward: Keyward,
    upstream: Upstream,
    api: Api,
}

async fn backend() -> Backend {
    let db = TestDb::sqlite();
    let admin = common::process::bootstrap(&db);
    let keyward = Keyward::start(&db.url, &envoy::example("keyward.toml"));
    let upstream = Upstream::start();
    let api = Api::connect(keyward.url(), admin).await;
    Backend {
        _db: db,
        keyward,
        upstream,
        api,
    }
}

/// Status, headers without `date`, body: what must be identical.
fn shape(r: &HttpResponse) -> (u16, Vec<(String, String)>, String) {
    let headers = r.headers.iter().filter(|(k, _)| k != "date").cloned();
    (r.status, headers.collect(), r.body.clone())
}

async fn get(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http(port, method, path, headers).await.unwrap()
}

/// What every gateway must do in front of keyward. `limited` is the status
/// a rate-limited key gets (nginx: 403, since it turns 429 into 500).
async fn contract(name: &str, port: u16, backend: &mut Backend, limited: u16) {
    let api = &mut backend.api;
    let (reader, reader_id) = api.issue_expiring("reader", &["orders:read"], None).await;
    let (expiring, _) = api
        .issue_expiring("expiring", &["orders:read"], Some(Duration::from_secs(1)))
        .await;
    let (revoked, revoked_id) = api.issue_expiring("revoked", &["orders:read"], None).await;
    let unknown = keyward::key::format::generate("acme").into_exposed();
    let mut malformed = unknown.clone();
    malformed.replace_range(10..11, if &malformed[10..11] == "A" { "B" } else { "A" });

    // A good key: 200 at the upstream, which learns who called and never
    // sees the key, nor an identity the client forged.
    for header in [
        ("x-api-key", reader.clone()),
        ("authorization", format!("Bearer {reader}")),
    ] {
        let forged = [
            (header.0, header.1.as_str()),
            ("x-keyward-key-id", "key_forged"),
        ];
        let r = get(port, "GET", "/orders/1?x=1", &forged).await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        let seen = r.echoed_headers();
        assert_eq!(
            seen["x-keyward-key-id"],
            reader_id.as_str(),
            "{name}: {seen:?}"
        );
        assert_eq!(seen["x-keyward-project"], "acme", "{name}");
        assert!(
            !seen.contains_key(header.0),
            "{name}: {} reached the upstream",
            header.0
        );
        assert!(
            !r.body.contains(&reader),
            "{name}: the key reached the upstream"
        );
    }

    // Revoked: allowed before (and cached), refused on the next request.
    let key = |k: &str| [("x-api-key", k.to_owned())];
    let pairs = |h: &[(&'static str, String)]| h.to_vec();
    let send = |h: Vec<(&'static str, String)>, method: &'static str, path: &'static str| async move {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        get(port, method, path, &h).await
    };
    assert_eq!(
        send(pairs(&key(&revoked)), "GET", "/orders/1").await.status,
        200
    );
    api.revoke_id(&revoked_id, "leaked").await;
    let r = send(pairs(&key(&revoked)), "GET", "/orders/1").await;
    assert_eq!(r.status, 401, "{name}: revoked, refused at once: {r:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // No, malformed, unknown, revoked, expired key: one identical 401.
    let mut refusals = vec![shape(&send(vec![], "GET", "/orders/1").await)];
    for bad in [&malformed, &unknown, &revoked, &expiring] {
        refusals.push(shape(&send(pairs(&key(bad)), "GET", "/orders/1").await));
    }
    assert_eq!(refusals[0].0, 401, "{name}: {refusals:?}");
    assert!(
        refusals[0].1.iter().any(|(k, _)| k == "www-authenticate"),
        "{name}: {refusals:?}"
    );
    assert!(
        refusals.windows(2).all(|w| w[0] == w[1]),
        "{name}: {refusals:?}"
    );

    // A key without the route's scope: 403, whatever the client claims the
    // original request was in the headers other gateways trust.
    let r = send(pairs(&key(&reader)), "DELETE", "/orders/1").await;
    assert_eq!(r.status, 403, "{name}: DELETE needs orders:write: {r:?}");
    let mut lowered = pairs(&key(&reader));
    for (header, value) in [
        ("x-original-method", "GET"),
        ("x-original-uri", "/public"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/public"),
    ] {
        lowered.push((header, value.to_owned()));
    }
    let r = send(lowered, "DELETE", "/orders/1").await;
    assert_eq!(
        r.status, 403,
        "{name}: the client lowered the requirement: {r:?}"
    );

    // A rate-limited key: refused with when to retry.
    let request = pb::IssueRequest {
        rate_limit: Some(pb::RateLimit {
            limit: 1,
            period: Some(pbjson_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
            burst: 1,
        }),
        ..common::client::issue_request("acme", "limited", &[])
    };
    let throttled = api.issue(request).await.key;
    assert_eq!(send(pairs(&key(&throttled)), "GET", "/x").await.status, 200);
    let r = send(pairs(&key(&throttled)), "GET", "/x").await;
    assert_eq!(r.status, limited, "{name}: {r:?}");
    assert!(r.header("retry-after").is_some(), "{name}: {r:?}");

    // Each decision is logged as Check's are, with the reason.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let checks = backend.keyward.checks();
        let allowed = checks
            .iter()
            .any(|e| e["decision"] == "allow" && e["key_id"] == reader_id.as_str());
        let reasons: Vec<&str> = checks.iter().filter_map(|e| e["reason"].as_str()).collect();
        if allowed
            && ["revoked", "expired", "insufficient_scope"]
                .iter()
                .all(|r| reasons.contains(r))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: decisions logged: {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // keyward stopped: never a 200.
    backend.keyward.proc.kill();
    for _ in 0..3 {
        let r = http(port, "GET", "/orders/1", &[("x-api-key", &reader)]).await;
        if let Ok(r) = r {
            assert!(
                !(200..300).contains(&r.status),
                "{name}: allowed without keyward: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_keyward() {
    if !gateway::available("nginx", &["-v"], "apt-get install nginx, or run .ci/deps") {
        return;
    }
    let mut backend = backend().await;
    let nginx = Gateway::nginx(backend.keyward.port, backend.upstream.port).await;
    contract("nginx", nginx.port, &mut backend, 403).await;
    drop(nginx);
}

#[tokio::test]
async fn caddy_forward_auth_in_front_of_keyward() {
    if !gateway::available(
        "caddy",
        &["version"],
        "apt-get install caddy, or run .ci/deps",
    ) {
        return;
    }
    let mut backend = backend().await;
    let caddy = Gateway::caddy(backend.keyward.port, backend.upstream.port).await;
    contract("caddy", caddy.port, &mut backend, 429).await;
    drop(caddy);
}

#[tokio::test]
async fn envoy_http_ext_authz_over_h2c_in_front_of_keyward() {
    if !envoy::available() {
        return;
    }
    let mut backend = backend().await;
    let envoy = Envoy::start_file(
        "envoy_http.yaml",
        backend.keyward.port,
        backend.upstream.port,
    )
    .await;
    contract("envoy", envoy.port, &mut backend, 429).await;
    drop(envoy);
}
