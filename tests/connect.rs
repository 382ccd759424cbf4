//! The KeyService over the Connect protocol and gRPC-Web on the main port,
//! as a shell script, a browser or a serverless function calls it: plain
//! HTTP/1.1 with JSON (or binary protobuf), errors as Connect's JSON codes.

mod common;

use common::{TestApp, TestDb, http};
use keyward::proto::v1 as pb;
use prost::Message;
use serde_json::{Value, json};

async fn json_flow(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let call = |method: &'static str, admin: String, body: Value| {
        let addr = app.addr;
        async move { http::connect_json(addr, method, &admin, body).await }
    };

    let issued = call(
        "Issue",
        admin.clone(),
        json!({"project": "shop", "label": "checkout", "scopes": ["orders:read"],
               "metadata": {"team": "pay"}, "rateLimit": {"limit": 100, "period": "1s"}}),
    )
    .await;
    assert_eq!(issued.status, 200, "{:?}", issued);
    assert_eq!(issued.header("content-type"), Some("application/json"));
    let issued = issued.json();
    let key = issued["key"].as_str().unwrap().to_owned();
    let id = issued["info"]["id"].as_str().unwrap().to_owned();
    // The proto3 JSON mapping: lowerCamelCase, enum names, durations as text.
    assert_eq!(issued["info"]["status"], "KEY_STATUS_ACTIVE");
    assert_eq!(issued["info"]["rateLimit"]["period"], "1s");
    assert!(issued["info"].get("created_at").is_none());

    // The write's response and a later read show the same instant.
    let got = call("GetKey", admin.clone(), json!({"keyId": id}))
        .await
        .json();
    assert_eq!(got["info"]["createdAt"], issued["info"]["createdAt"]);
    assert_eq!(got["info"]["updatedAt"], issued["info"]["updatedAt"]);

    // snake_case accepted on input, as the mapping says.
    let verify = |key: String| {
        call(
            "Verify",
            String::new(),
            json!({"key": key, "required_scopes": ["orders:read"]}),
        )
    };
    let allowed = verify(key.clone()).await.json();
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(allowed["reason"], "REASON_OK");
    assert_eq!(allowed["keyId"], id.as_str());

    let rotated = call(
        "Rotate",
        admin.clone(),
        json!({"keyId": id, "gracePeriod": "0s"}),
    )
    .await
    .json();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let new_id = rotated["info"]["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previous"]["replacedBy"], new_id.as_str());
    let old = verify(key).await.json();
    assert_eq!(
        (old["allowed"].as_bool(), &old["reason"]),
        (None, &json!("REASON_REVOKED")),
        "{old}"
    );
    assert_eq!(verify(new_key.clone()).await.json()["reason"], "REASON_OK");

    let revoked = call(
        "Revoke",
        admin.clone(),
        json!({"keyId": new_id, "reason": "done"}),
    )
    .await
    .json();
    assert_eq!(revoked["info"]["status"], "KEY_STATUS_REVOKED");
    assert_eq!(revoked["info"]["revokeReason"], "done");
    assert_eq!(verify(new_key).await.json()["reason"], "REASON_REVOKED");

    let listed = call("ListKeys", admin, json!({"project": "shop"}))
        .await
        .json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");
}
on_both_stores!(issue_verify_rotate_revoke_over_connect_json, json_flow);

#[tokio::test]
async fn errors_are_connect_codes_with_their_http_status() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let issue = json!({"project": "shop", "label": "x"});

    let anonymous = http::connect_json(app.addr, "Issue", "", issue.clone()).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["code"], "unauthenticated");
    let wrong = http::connect_json(app.addr, "Issue", "shop_nope", issue.clone()).await;
    assert_eq!(
        (wrong.status, wrong.json()["code"].clone()),
        (401, json!("unauthenticated"))
    );

    let bad = http::connect_json(
        app.addr,
        "Issue",
        &admin,
        json!({"project": "", "label": "x"}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let body = bad.json();
    assert_eq!(body["code"], "invalid_argument");
    assert!(
        body["message"].as_str().unwrap().contains("project"),
        "{body}"
    );
    // A body that is not the request message is a bad argument too.
    let garbled = http::connect_json(app.addr, "Verify", "", json!({"noSuchField": 1})).await;
    assert_eq!(
        (garbled.status, garbled.json()["code"].clone()),
        (400, json!("invalid_argument"))
    );

    let unknown = http::connect_json(app.addr, "Nope", "", json!({})).await;
    assert_eq!(
        (unknown.status, unknown.json()["code"].clone()),
        (404, json!("unimplemented"))
    );

    let path = "/keyward.v1.KeyService/Verify";
    let get = http::request(app.addr, "GET", path, &[], b"").await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    let text = http::request(
        app.addr,
        "POST",
        path,
        &[("content-type", "text/plain")],
        b"{}",
    )
    .await;
    assert_eq!(text.status, 415);
    let version = http::request(
        app.addr,
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("connect-protocol-version", "2"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(
        (version.status, version.json()["code"].clone()),
        (400, json!("invalid_argument"))
    );
    let huge = vec![b' '; 100 * 1024];
    let big = http::request(
        app.addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        &huge,
    )
    .await;
    assert_eq!(big.json()["code"], "resource_exhausted");
    // No secret in any error: the wrong admin key is not echoed.
    assert!(!String::from_utf8_lossy(&wrong.body).contains("shop_nope"));
}

#[tokio::test]
async fn binary_protobuf_and_the_timeout_header() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let issued = http::connect_json(
        app.addr,
        "Issue",
        &admin,
        json!({"project": "bin", "label": "b", "scopes": ["a:b"]}),
    )
    .await
    .json();
    let request = pb::VerifyRequest {
        key: issued["key"].as_str().unwrap().to_owned(),
        required_scopes: vec!["a:b".into()],
        ..Default::default()
    };
    let reply = http::request(
        app.addr,
        "POST",
        "/keyward.v1.KeyService/Verify",
        &[
            ("content-type", "application/proto"),
            ("connect-timeout-ms", "5000"),
        ],
        &request.encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/proto"));
    let response = pb::VerifyResponse::decode(reply.body.as_slice()).unwrap();
    assert!(response.allowed);
    assert_eq!(response.reason(), pb::Reason::Ok);
    assert_eq!(response.key_id, issued["info"]["id"].as_str().unwrap());

    let bad_timeout = http::request(
        app.addr,
        "POST",
        "/keyward.v1.KeyService/Verify",
        &[
            ("content-type", "application/proto"),
            ("connect-timeout-ms", "soon"),
        ],
        &request.encode_to_vec(),
    )
    .await;
    assert_eq!(bad_timeout.status, 400);
}

/// gRPC-Web's text form (base64 frames), as a browser without binary
/// support sends it; the binary form is in tests/connect_clients.rs.
#[tokio::test]
async fn grpc_web_text() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let request = pb::VerifyRequest {
        key: "not-a-key".into(),
        ..Default::default()
    };
    let message = request.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let reply = http::request(
        app.addr,
        "POST",
        "/keyward.v1.KeyService/Verify",
        &[
            ("content-type", "application/grpc-web-text"),
            ("accept", "application/grpc-web-text"),
            ("x-grpc-web", "1"),
        ],
        STANDARD.encode(&frame).as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/grpc-web-text"),
        "{reply:?}"
    );
    // The body is base64 chunks: a data frame, then a trailer frame.
    let text = String::from_utf8(reply.body).unwrap();
    let (mut bytes, mut segment) = (Vec::new(), String::new());
    for c in text.trim().chars().chain(std::iter::once('.')) {
        // Each frame is padded on its own: a segment ends after its `=`s.
        if c == '.' || (c != '=' && segment.ends_with('=')) {
            bytes.extend(STANDARD.decode(&segment).unwrap());
            segment.clear();
        }
        segment.push(c);
    }
    assert_eq!(bytes[0], 0, "a data frame first");
    let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    let response = pb::VerifyResponse::decode(&bytes[5..5 + len]).unwrap();
    assert_eq!(response.reason(), pb::Reason::Malformed);
    let trailers = String::from_utf8_lossy(&bytes[5 + len + 5..]).to_ascii_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    // Only the KeyService speaks gRPC-Web.
    let health = http::request(
        app.addr,
        "POST",
        "/grpc.health.v1.Health/Check",
        &[("content-type", "application/grpc-web")],
        b"",
    )
    .await;
    assert_eq!(health.status, 404);
}

#[tokio::test]
async fn cors_only_for_the_configured_origins() {
    let db = TestDb::sqlite();
    let preflight = |addr, origin: &'static str| async move {
        http::request(
            addr,
            "OPTIONS",
            "/keyward.v1.KeyService/Verify",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,x-grpc-web"),
            ],
            b"",
        )
        .await
    };
    let closed = TestApp::spawn(&db).await;
    let refused = preflight(closed.addr, "https://console.example").await;
    assert!(!(200..300).contains(&refused.status), "{refused:?}");
    assert!(refused.header("access-control-allow-origin").is_none());
    closed.stop().await;

    let config = common::config(
        &db.url,
        &[
            "--cors-allowed-origins",
            "https://console.example,https://b.example",
        ],
    );
    let open = TestApp::spawn_with(config, None).await;
    let allowed = preflight(open.addr, "https://console.example").await;
    assert!((200..300).contains(&allowed.status), "{allowed:?}");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://console.example")
    );
    assert_eq!(
        preflight(open.addr, "https://evil.example").await.status,
        403
    );
    let call = http::request(
        open.addr,
        "POST",
        "/keyward.v1.KeyService/Verify",
        &[
            ("content-type", "application/json"),
            ("origin", "https://b.example"),
        ],
        br#"{"key":"x"}"#,
    )
    .await;
    assert_eq!(call.status, 200);
    assert_eq!(
        call.header("access-control-allow-origin"),
        Some("https://b.example")
    );
}
