//! Certificates renewed on disk are served without a restart; bad TLS
//! settings stop startup with a clear error.

use std::time::Duration;

use super::{connect::*, pki::*};
use crate::common::TestDb;

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let ca = Ca::new("keyward test CA");
    let a = ca.server("keyward-a", 1);
    let b = ca.server("keyward-b", 2);
    assert_ne!(a.der, b.der);
    let mut dir = SecretDir::new();
    dir.publish_server(&a, None);
    let db = TestDb::sqlite();
    let mut args = dir.server_args(false);
    args.extend(["--tls-reload-interval".to_owned(), "200ms".to_owned()]);
    let app = spawn(&db, &args).await;

    assert_eq!(served_certificate(app.addr, &ca).await, a.der);
    let before = connect(app.addr, trusting(&ca)).await.unwrap();
    assert!(health(before.clone()).await.is_ok());

    dir.publish_server(&b, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if served_certificate(app.addr, &ca).await == b.der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still serving certificate A"
        );
    }
    assert!(admitted(app.addr, trusting(&ca)).await);
    // The connection made before the renewal carries on.
    assert!(health(before).await.is_ok());

    // A renewal that does not load (here a key of another certificate)
    // leaves the server on the last good one.
    let c = ca.server("keyward-c", 3);
    dir.publish(&[("tls.crt", &c.cert), ("tls.key", &a.key)]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(served_certificate(app.addr, &ca).await, b.der);
    dir.publish(&[("tls.crt", "not a certificate"), ("tls.key", &c.key)]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(served_certificate(app.addr, &ca).await, b.der);
    assert!(admitted(app.addr, trusting(&ca)).await);
    app.stop().await;
}

#[tokio::test]
async fn startup_fails_clearly_on_bad_tls_settings() {
    let ca = Ca::new("keyward test CA");
    let leaf = ca.server("keyward", 1);
    let mut dir = SecretDir::new();
    dir.publish_server(&leaf, None);
    let db = TestDb::sqlite();
    let build = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let config = crate::common::config(&db.url, &args);
        async move {
            let app = keyward::startup::Application::build(config).await;
            format!("{:#}", app.err().expect("startup should fail"))
        }
    };

    let cert = dir.path("tls.crt").display().to_string();
    let error = build(vec!["--tls-cert".into(), cert.clone()]).await;
    assert!(error.contains("--tls-key"), "{error}");

    let missing = dir.path("missing.key").display().to_string();
    let error = build(vec![
        "--tls-cert".into(),
        cert.clone(),
        "--tls-key".into(),
        missing.clone(),
    ])
    .await;
    assert!(error.contains(&missing), "{error}");

    // The certificate given as the key: named, and no PEM body echoed.
    let error = build(vec![
        "--tls-cert".into(),
        cert.clone(),
        "--tls-key".into(),
        cert.clone(),
    ])
    .await;
    assert!(
        error.contains("tls.crt") && error.contains("private key"),
        "{error}"
    );
    assert!(!error.contains("BEGIN"), "{error}");
}
