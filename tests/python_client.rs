//! The proto is a contract for clients in other languages: a Python grpcio
//! client generated from it runs the quickstart against the real server.

mod common;

use std::process::Command;

use common::{TestApp, TestDb};

fn grpcio_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || !common::required(),
        "CI is set but python3 lacks grpcio/grpcio-tools (pip install grpcio grpcio-tools)"
    );
    if !found {
        eprintln!("SKIPPED: python3 lacks grpcio/grpcio-tools; set CI to make this fail");
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
