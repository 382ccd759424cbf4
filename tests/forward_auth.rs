//! Forward auth on the main port (`/authz/envoy/…`, `/authz/nginx`,
//! `/authz/forwarded`) against an in-process server: how each endpoint
//! rebuilds the original request, what it refuses before any key is
//! looked at, and that it decides as `Check` does. Real gateways in front
//! of it are in tests/gateways.rs.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{
    TestDb,
    check::Keys,
    counting::CountingStore,
    forward::{MODES, Mode, RULES, sub},
    http::{HttpResponse, http},
};
use keyward::proto::v1 as pb;

async fn ask(
    keys: &Keys,
    mode: Mode,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> HttpResponse {
    let (sub_method, path, mut headers) = sub(mode, method, target);
    headers.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    raw(keys, &sub_method, &path, &headers).await
}

async fn raw(keys: &Keys, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http(keys.app.addr.port(), method, path, headers)
        .await
        .unwrap()
}

/// Status, headers without `date`, body: what must be identical.
fn shape(r: &HttpResponse) -> (u16, Vec<(String, String)>, String) {
    let headers = r.headers.iter().filter(|(k, _)| k != "date").cloned();
    (r.status, headers.collect(), r.body.clone())
}

#[tokio::test]
async fn each_mode_rebuilds_the_original_request_and_applies_the_rules() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (reader, reader_id) = keys.issue("reader", &["orders:read"], None).await;
    for mode in MODES {
        let allowed = ask(
            &keys,
            mode,
            "GET",
            "/orders/1?x=1",
            &[("x-api-key", &reader)],
        )
        .await;
        assert_eq!(allowed.status, 200, "{mode:?} {allowed:?}");
        assert_eq!(allowed.body, "", "{mode:?}");
        assert_eq!(allowed.header("x-keyward-key-id"), Some(reader_id.as_str()));
        assert_eq!(allowed.header("x-keyward-project"), Some("acme"));
        let remove = allowed.header("x-envoy-auth-headers-to-remove");
        if mode == Mode::Envoy {
            assert_eq!(remove, Some("x-api-key"), "Envoy strips the credential");
        } else {
            assert_eq!(remove, None, "{mode:?}");
        }
        let bearer = format!("Bearer {reader}");
        let write = ask(
            &keys,
            mode,
            "DELETE",
            "/orders/1",
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(write.status, 403, "{mode:?}: DELETE needs orders:write");
        assert_eq!(write.body, r#"{"error":"forbidden"}"#);
        // Method case does not dodge the write rule.
        let lower = ask(
            &keys,
            mode,
            "delete",
            "/orders/1",
            &[("x-api-key", &reader)],
        )
        .await;
        assert_eq!(lower.status, 403, "{mode:?}");
        // Case-insensitive rules: /ORDERS is /orders.
        let upper = ask(&keys, mode, "PUT", "/ORDERS/1", &[("x-api-key", &reader)]).await;
        assert_eq!(upper.status, 403, "{mode:?}");
        // The auth URL's own query names nothing: no scopes, no key.
        let (m, path, headers) = sub(mode, "GET", "/orders/1");
        let path = if mode == Mode::Envoy {
            path
        } else {
            format!("{path}?scopes=&x-api-key={reader}")
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            raw(&keys, &m, &path, &headers).await.status,
            401,
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn the_other_family_of_headers_changes_nothing() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (reader, _) = keys.issue("reader", &["orders:read"], None).await;
    let forged = [
        ("x-original-method", "GET"),
        ("x-original-uri", "/orders/1"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/orders/1"),
    ];
    for mode in MODES {
        let key = [("x-api-key", reader.as_str())];
        let plain = ask(&keys, mode, "DELETE", "/orders/1", &key).await;
        assert_eq!(plain.status, 403, "{mode:?}");
        let ignored: Vec<(&str, &str)> = forged
            .iter()
            .filter(|(name, _)| match mode {
                Mode::Envoy => true,
                Mode::Nginx => name.starts_with("x-forwarded"),
                Mode::Forwarded => name.starts_with("x-original"),
            })
            .copied()
            .chain(key)
            .collect();
        let with = ask(&keys, mode, "DELETE", "/orders/1", &ignored).await;
        assert_eq!(
            shape(&with),
            shape(&plain),
            "{mode:?}: the answer without them"
        );
    }
}

#[tokio::test]
async fn sub_requests_that_name_no_original_request_are_400() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "", None).await;
    let (good, _) = keys.issue("good", &[], None).await;
    for key in [None, Some(good.as_str())] {
        let key: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        let with = |pairs: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
            pairs.iter().copied().chain(key.iter().copied()).collect()
        };
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("/authz/nginx", with(&[])),
            ("/authz/nginx", with(&[("x-original-uri", "/a")])),
            ("/authz/nginx", with(&[("x-original-method", "GET")])),
            (
                "/authz/nginx",
                with(&[
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/a"),
                    ("x-original-uri", "/b"),
                ]),
            ),
            (
                "/authz/nginx",
                with(&[("x-forwarded-method", "GET"), ("x-forwarded-uri", "/a")]),
            ),
            (
                "/authz/forwarded",
                with(&[("x-original-method", "GET"), ("x-original-uri", "/a")]),
            ),
            (
                "/authz/forwarded",
                with(&[
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-uri", "/a"),
                ]),
            ),
            (
                "/authz/forwarded",
                with(&[
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-uri", "http://api.example/a"),
                ]),
            ),
            (
                "/authz/forwarded",
                with(&[
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-uri", "/a/../b"),
                ]),
            ),
            (
                "/authz/nginx",
                with(&[("x-original-method", "GET"), ("x-original-uri", "/a;b")]),
            ),
            ("/authz/envoy", with(&[])),
            ("/authz/envoy/a//b", with(&[])),
            ("/authz/envoy/a/%2e%2e/b", with(&[])),
        ];
        for (path, headers) in cases {
            let r = raw(&keys, "GET", path, &headers).await;
            assert_eq!(r.status, 400, "{path} {headers:?}: {r:?}");
            assert_eq!(r.body, r#"{"error":"bad_request"}"#);
        }
    }
}

#[tokio::test]
async fn bad_keys_get_one_identical_401_in_every_mode() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (revoked, revoked_id) = keys.issue("revoked", &["orders:read"], None).await;
    let (expiring, _) = keys
        .issue("expiring", &["orders:read"], Some(Duration::from_secs(1)))
        .await;
    keys.revoke(&revoked_id).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = keyward::key::format::generate("acme").into_exposed();
    let mut malformed = unknown.clone();
    malformed.replace_range(10..11, if &malformed[10..11] == "A" { "B" } else { "A" });
    for mode in MODES {
        let mut seen = Vec::new();
        for key in [
            None,
            Some(&malformed),
            Some(&unknown),
            Some(&revoked),
            Some(&expiring),
        ] {
            let headers: Vec<(&str, &str)> =
                key.map(|k| ("x-api-key", k.as_str())).into_iter().collect();
            let r = ask(&keys, mode, "GET", "/orders/1", &headers).await;
            assert_eq!(r.status, 401, "{mode:?} {r:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some(r#"ApiKey realm="keyward""#)
            );
            seen.push(shape(&r));
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{mode:?}: {seen:?}");
    }
}

#[tokio::test]
async fn limits_answer_429_except_403_for_nginx_and_usage_is_counted() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "", None).await;
    let request = pb::IssueRequest {
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
        ..common::client::issue_request("acme", "limited", &[])
    };
    let issued = keys.api.issue(request).await;
    let (key, id) = (issued.key, issued.info.unwrap().id);
    let headers = [("x-api-key", key.as_str())];
    let first = ask(&keys, Mode::Forwarded, "GET", "/x", &headers).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-keyward-quota-remaining"), Some("99"));
    for (mode, status) in [
        (Mode::Forwarded, 429),
        (Mode::Envoy, 429),
        (Mode::Nginx, 403),
    ] {
        let r = ask(&keys, mode, "GET", "/x", &headers).await;
        assert_eq!(r.status, status, "{mode:?} {r:?}");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=10).contains(&retry), "{mode:?}: {retry}");
        assert_eq!(r.body, r#"{"error":"too_many_requests"}"#);
    }
    // Usage counts every forward-auth decision, as for Check.
    keys.app.state.usage.flush().await.unwrap();
    let usage = keys
        .api
        .usage(pb::GetUsageRequest {
            key_id: id,
            since: Some(keyward::proto::timestamp::Timestamp {
                seconds: chrono::Utc::now().timestamp() - 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await;
    let allowed: i64 = usage.series.iter().map(|p| p.allowed).sum();
    let denied: i64 = usage.series.iter().map(|p| p.denied).sum();
    assert_eq!((allowed, denied), (1, 3), "{usage:?}");
}

#[tokio::test]
async fn undecidable_is_503_and_observe_mode_lets_through() {
    let db = TestDb::sqlite();
    let store = CountingStore::new(db.store().await);
    let mut keys = Keys::start(&db, "", Some(store.clone())).await;
    let (cold, _) = keys.issue("cold", &[], None).await;
    store.fail_lookups.store(true, Ordering::SeqCst);
    for mode in MODES {
        let r = ask(&keys, mode, "GET", "/x", &[("x-api-key", &cold)]).await;
        assert_eq!(r.status, 503, "{mode:?} {r:?}");
        assert!(!r.body.contains(&cold));
    }
    drop(keys);

    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "[ext_authz]\nobserve = true\n", None).await;
    let (revoked, id) = keys.issue("revoked", &[], None).await;
    keys.revoke(&id).await;
    for mode in MODES {
        let forged = [
            ("x-api-key", revoked.as_str()),
            ("x-keyward-key-id", "key_forged"),
        ];
        let r = ask(&keys, mode, "GET", "/x", &forged).await;
        assert_eq!(r.status, 200, "{mode:?}: observe mode lets it through");
        assert_eq!(r.header("x-keyward-key-id"), None, "unidentified");
        if mode == Mode::Envoy {
            let remove = r.header("x-envoy-auth-headers-to-remove").unwrap();
            assert!(remove.contains("x-keyward-key-id"), "{remove}");
        }
    }
}

#[tokio::test]
async fn only_the_exact_raw_paths_are_endpoints_and_all_of_authz_is_http() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "", None).await;
    let (good, _) = keys.issue("good", &[], None).await;
    let original = [("x-original-method", "GET"), ("x-original-uri", "/x")];
    for path in [
        "/authz/nginxfoo",
        "/AUTHZ/nginx",
        "/authz/nginx/",
        "/authz/%6eginx",
        "/authz/forwardedx",
        "/authz/envoyx/a",
        "/authz/",
        "/authz",
        "/",
        "/orders",
    ] {
        let r = raw(&keys, "GET", path, &original).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    // A client's gRPC content-type, passed along by the gateway, still
    // reaches forward auth, never the gRPC server.
    let grpc = [
        ("content-type", "application/grpc"),
        ("x-api-key", good.as_str()),
        original[0],
        original[1],
    ];
    assert_eq!(raw(&keys, "POST", "/authz/nginx", &grpc).await.status, 200);
    let r = raw(&keys, "POST", "/authz/nginxfoo", &grpc).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.header("grpc-status"), None);
}

#[tokio::test]
async fn h2c_with_prior_knowledge_works_and_unknown_paths_are_404() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (reader, reader_id) = keys.issue("reader", &["orders:read"], None).await;
    let tcp = tokio::net::TcpStream::connect(keys.app.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut send = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", keys.app.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (response, _) = client
            .send_request(request.body(()).unwrap(), true)
            .unwrap();
        response
    };
    let key = [("x-api-key", reader.as_str())];
    let allowed = send("GET", "/authz/envoy/orders/1", &key).await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["x-keyward-key-id"], reader_id.as_str());
    let refused = send("POST", "/authz/envoy/orders/1", &key).await.unwrap();
    assert_eq!(refused.status(), 403);
    // A wrong prefix is never an allow (it was a 200 with grpc-status 12).
    for path in ["/authz/envoi/orders/1", "/envoy/orders/1", "/"] {
        let r = send("GET", path, &key).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}
