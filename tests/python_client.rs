//! The proto is a contract for clients in other languages: a Python grpcio
//! client generated from it runs the quickstart against the real server.

mod common;

use common::{TestApp, TestDb, python};

async fn python_contract(db: TestDb) {
    if !python::available(
        "grpc, grpc_tools",
        "pip install grpcio grpcio-tools, or run .ci/deps",
    ) {
        return;
    }
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    python::run("contract.py", &app.addr.to_string(), &admin, "contract ok").await;
}
on_both_stores!(python_grpcio_client, python_contract);
