//! The ways around route rules, tried against the real server over Check as
//! a client would when Envoy forwards its request without normalising it:
//! path spellings, method case, several credentials, IPv4-mapped sources.
//! Every variant must be refused (403 or 400), never let through on "any
//! valid key".

mod common;

use envoy_types::ext_authz::v3::pb::{CheckResponse, HttpResponse};
use keyward::proto::v1 as pb;

use common::{
    TestDb,
    check::{Keys, Req, check, denied, get, meta, ok, status},
};

const RULES: &str = r#"
[ext_authz]
query_param = "api_key"

[[ext_authz.routes]]
path = "/admin/**"
scopes = ["admin:all"]

[[ext_authz.routes]]
methods = ["POST", "PUT", "PATCH", "DELETE"]
path = "/orders/**"
scopes = ["orders:write"]

[[ext_authz.routes]]
path = "/orders/**"
scopes = ["orders:read"]
"#;

fn code(response: &CheckResponse) -> i32 {
    match &response.http_response {
        Some(HttpResponse::OkResponse(_)) => 200,
        Some(HttpResponse::DeniedResponse(d)) => status(d),
        _ => 0,
    }
}

/// Spellings of `/admin/x` that an upstream may read as it.
const ADMIN_VARIANTS: &[&str] = &[
    "/ADMIN/x",
    "/Admin/x",
    "/aDmIn",
    "/admin;x/y",
    "/admin;/x",
    "/admin;jsessionid=1",
    "/admin/x;y",
    "/%61dmin/x",
    "/%41DMIN/x",
    "/adm%69n/x",
    "/%61%64%6d%69%6e/x",
    "//admin/x",
    "/./admin/x",
    "/public/../admin/x",
    "/public/%2e%2e/admin/x",
    "/public/.%2E/admin/x",
    "/public%2F..%2Fadmin/x",
    "/public/..%2fadmin/x",
    "/public/..%5cadmin/x",
    "/public\\..\\admin/x",
    "/admin%2fx",
    "/admin%3Bx/y",
    "/admin%252fx",
    "/admin%00/x",
    "/admin\t/x",
    "/%C0%AFadmin/x",
    "http://api.example/admin/x",
    "api.example/admin/x",
];

#[tokio::test]
async fn spellings_of_a_guarded_path_are_refused_or_guarded() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (reader, _) = keys.issue("reader", &["orders:read"], None).await;
    let (admin, _) = keys.issue("admin", &["admin:all"], None).await;
    let mut client = keys.authz().await;

    // The rules do let through what they should, so the refusals below are
    // not a server that refuses everything.
    for (req, want) in [
        (get("/admin/x").key(&admin), 200),
        (get("/admin/x").key(&reader), 403),
        (get("/orders/1").key(&reader), 200),
        (get("/public").key(&reader), 200),
        (get("/public/%7Euser/a%20b").key(&reader), 200),
    ] {
        let path = req.path.clone();
        assert_eq!(code(&check(&mut client, req).await), want, "{path}");
    }

    for path in ADMIN_VARIANTS {
        for method in ["GET", "POST"] {
            let response = check(&mut client, get(path).key(&reader).method(method)).await;
            let got = code(&response);
            assert!(
                got == 403 || got == 400,
                "{method} {path:?} with a key lacking admin:all: {got}"
            );
            let reason = meta(&response, "reason").unwrap();
            assert!(
                reason == "insufficient_scope" || reason == "path_not_normal",
                "{path:?}: {reason}"
            );
        }
    }
}

#[tokio::test]
async fn writes_stay_guarded_whatever_the_method_case_or_path_spelling() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (reader, _) = keys.issue("reader", &["orders:read"], None).await;
    let (writer, _) = keys.issue("writer", &["orders:*"], None).await;
    let mut client = keys.authz().await;

    assert_eq!(
        code(&check(&mut client, get("/orders/1").method("POST").key(&writer)).await),
        200
    );
    let writes: Vec<Req> = [
        ("POST", "/orders/1"),
        ("post", "/orders/1"),
        ("Delete", "/orders/1"),
        ("pUt", "/orders"),
        ("POST", "/ORDERS/1"),
        ("POST", "/Orders"),
        ("POST", "/%6Frders/1"),
        ("POST", "/orders;x/1"),
        ("POST", "/orders/1;edit"),
        ("POST", "//orders/1"),
        ("POST", "/public/../orders/1"),
        ("PATCH", "/orders%2F1"),
        ("DELETE", "/orders/%2e/1"),
    ]
    .into_iter()
    .map(|(method, path)| get(path).method(method).key(&reader))
    .collect();
    for req in writes {
        let (method, path) = (req.method, req.path.clone());
        let got = code(&check(&mut client, req).await);
        assert!(
            got == 403 || got == 400,
            "{method} {path:?} with a read-only key: {got}"
        );
    }
}

#[tokio::test]
async fn a_method_override_cannot_turn_a_read_into_an_unchecked_write() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (reader, _) = keys.issue("reader", &["orders:read"], None).await;
    let mut client = keys.authz().await;
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        let response = check(
            &mut client,
            get("/orders/1").key(&reader).header(name, "delete"),
        )
        .await;
        assert_eq!(status(denied(&response)), 400, "{name}");
        assert_eq!(
            meta(&response, "reason").as_deref(),
            Some("method_override")
        );
    }
    // An override that lands on the same rule changes nothing.
    for (path, method) in [("/orders/1", "HEAD"), ("/public", "POST")] {
        let req = get(path)
            .key(&reader)
            .header("x-http-method-override", method);
        assert_eq!(code(&check(&mut client, req).await), 200, "{path} {method}");
    }
}

#[tokio::test]
async fn default_route_deny_refuses_what_no_rule_names() {
    let db = TestDb::sqlite();
    let config = RULES.replace(
        "query_param = \"api_key\"",
        "query_param = \"api_key\"\ndefault_route = \"deny\"",
    );
    let mut keys = Keys::start(&db, &config, None).await;
    let (reader, _) = keys.issue("reader", &["orders:read"], None).await;
    let mut client = keys.authz().await;

    assert_eq!(
        code(&check(&mut client, get("/orders/1").key(&reader)).await),
        200
    );
    let response = check(&mut client, get("/public").key(&reader)).await;
    assert_eq!(status(denied(&response)), 403);
    assert_eq!(meta(&response, "reason").as_deref(), Some("no_route"));
    // Without a key the answer is the usual 401: an unrouted path tells a
    // stranger nothing a routed one does not.
    let response = check(&mut client, get("/public")).await;
    assert_eq!(status(denied(&response)), 401);
    // The route's own extension still wins.
    let response = check(
        &mut client,
        get("/public").key(&reader).ctx("keyward_scopes", ""),
    )
    .await;
    ok(&response);
}

#[tokio::test]
async fn every_credential_source_is_stripped_and_different_keys_are_refused() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, RULES, None).await;
    let (key, _) = keys.issue("k", &["orders:read"], None).await;
    let (other, _) = keys.issue("other", &["orders:read"], None).await;
    let mut client = keys.authz().await;

    let both = get(&format!("/orders/1?api_key={key}"))
        .key(&key)
        .header("authorization", format!("Bearer {key}"));
    let response = check(&mut client, both).await;
    let allowed = ok(&response);
    let mut removed = allowed.headers_to_remove.clone();
    removed.sort();
    assert_eq!(removed, ["authorization", "x-api-key"]);
    assert_eq!(allowed.query_parameters_to_remove, ["api_key"]);

    // A `Basic` authorization is the upstream's, not a keyward credential.
    let basic = get("/orders/1")
        .key(&key)
        .header("authorization", "Basic dXNlcjpwYXNz");
    let response = check(&mut client, basic).await;
    assert_eq!(ok(&response).headers_to_remove, ["x-api-key"]);

    // Two valid keys: which one the upstream believes is anyone's guess.
    for req in [
        get("/orders/1")
            .key(&key)
            .header("authorization", format!("Bearer {other}")),
        get(&format!("/orders/1?api_key={other}")).key(&key),
        get(&format!("/orders/1?api_key={key}&api_key={other}")),
        get(&format!("/orders/1?api%5Fkey={other}")).key(&key),
    ] {
        let path = req.path.clone();
        let response = check(&mut client, req).await;
        assert_eq!(status(denied(&response)), 401, "{path}");
        assert_eq!(
            meta(&response, "reason").as_deref(),
            Some("ambiguous_credential")
        );
    }
}

#[tokio::test]
async fn ipv4_mapped_sources_match_ipv4_ranges_in_check_and_verify() {
    let db = TestDb::sqlite();
    let mut keys = Keys::start(&db, "[ext_authz]\nxff_trusted_hops = 1\n", None).await;
    let mut issued = Vec::new();
    for cidr in ["10.0.0.0/8", "::ffff:10.0.0.0/104"] {
        let request = pb::IssueRequest {
            project: "acme".into(),
            label: cidr.into(),
            allowed_cidrs: vec![cidr.into()],
            ..Default::default()
        };
        let key = keys.api.issue(request).await.key;
        issued.push(key);
    }
    let mut client = keys.authz().await;
    for key in &issued {
        for (via, req) in [
            ("mapped peer", get("/x").key(key).peer("::ffff:10.1.2.3")),
            ("ipv4 peer", get("/x").key(key).peer("10.1.2.3")),
            (
                "mapped x-forwarded-for",
                get("/x")
                    .key(key)
                    .peer("192.0.2.1")
                    .header("x-forwarded-for", "::ffff:10.9.9.9"),
            ),
        ] {
            assert_eq!(code(&check(&mut client, req).await), 200, "{via}");
        }
        let outside = get("/x").key(key).peer("::ffff:11.1.2.3");
        assert_eq!(status(denied(&check(&mut client, outside).await)), 403);

        for (ip, allowed) in [
            ("::ffff:10.1.2.3", true),
            ("10.1.2.3", true),
            ("::ffff:11.1.2.3", false),
        ] {
            let response = keys.api.verify_from(key, &[], ip).await;
            assert_eq!(response.allowed, allowed, "Verify from {ip}");
        }
    }
}
