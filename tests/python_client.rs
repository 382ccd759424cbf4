//! The proto is a contract for clients in other languages: a Python grpcio
//! client generated from it runs the quickstart against the real server.

mod common;

use common::{TestApp, TestDb};

fn grpcio_available() -> bool {
    let found = common::runs("python3", &["-c", "import grpc, grpc_tools"]);
    if !found {
        common::skip(
            "python3 lacks grpcio/grpcio-tools",
            "pip install grpcio grpcio-tools, or run .ci/deps",
        );
    }
    found
}

async fn python_contract(db: TestDb) {
    if !grpcio_available() {
        return;
    }
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/contract.py");
    let addr = app.addr.to_string();
    let out = tokio::process::Command::new("python3")
        .args([script, &addr])
        .env("KEYWARD_ADMIN_KEY", &admin)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("contract ok"), "{stdout}");
}
on_both_stores!(python_grpcio_client, python_contract);
