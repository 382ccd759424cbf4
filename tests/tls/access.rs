//! Who may connect: clients that trust the CA, and under mTLS only those
//! with a certificate from the client CA.

use std::time::Duration;

use keyward::store::AuditQuery;
use tonic::transport::{Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;

use super::{connect::*, pki::*};
use crate::common::{TestDb, client::issue_request};

#[tokio::test]
async fn a_client_that_trusts_the_ca_connects_and_others_do_not() {
    let ca = Ca::new("keyward test CA");
    let mut dir = SecretDir::new();
    dir.publish_server(&ca.server("keyward", 1), None);
    let db = TestDb::sqlite();
    let app = spawn(&db, &dir.server_args(false)).await;

    let channel = connect(app.addr, trusting(&ca)).await.unwrap();
    assert_eq!(
        health(channel.clone()).await.unwrap(),
        ServingStatus::Serving as i32
    );
    let mut api = api_over(&app, channel).await;
    let issued = api
        .issue(issue_request("acme", "over-tls", &["orders:read"]))
        .await;
    let verdict = api.verify(&issued.key, &["orders:read"]).await;
    assert!(verdict.allowed, "{verdict:?}");

    // The audit event still names the caller's address over TLS.
    let events = app
        .state
        .store
        .list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let event = events.iter().find(|e| e.action == "issue").unwrap();
    assert!(event.source.starts_with("127.0.0.1:"), "{event:?}");

    let stranger = Ca::new("someone else's CA");
    assert!(!admitted(app.addr, trusting(&stranger)).await);

    // Plaintext gRPC to the TLS port gets nowhere, and does not stop the
    // server from serving the next client.
    let plaintext = Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5));
    if let Ok(channel) = plaintext.connect().await {
        assert!(health(channel).await.is_err());
    }
    assert!(admitted(app.addr, trusting(&ca)).await);
    app.stop().await;
}

#[tokio::test]
async fn under_mtls_only_clients_with_a_certificate_from_the_ca_get_in() {
    let ca = Ca::new("keyward test CA");
    let mut dir = SecretDir::new();
    dir.publish_server(&ca.server("keyward", 1), Some(&ca));
    let db = TestDb::sqlite();
    let app = spawn(&db, &dir.server_args(true)).await;

    assert!(
        !admitted(app.addr, trusting(&ca)).await,
        "a client without a certificate is refused"
    );

    let client = ca.client("checkout");
    let with_cert = trusting(&ca).identity(Identity::from_pem(&client.cert, &client.key));
    assert!(admitted(app.addr, with_cert).await);

    let stranger = Ca::new("someone else's CA");
    let forged = stranger.client("checkout");
    let with_forged = trusting(&ca).identity(Identity::from_pem(&forged.cert, &forged.key));
    assert!(
        !admitted(app.addr, with_forged).await,
        "a certificate from another CA is refused"
    );
    app.stop().await;
}
