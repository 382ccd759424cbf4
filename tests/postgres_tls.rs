//! Postgres over TLS: a private server that accepts TLS connections only,
//! with a certificate from a CA made for the test. verify-full with that CA
//! works (from URL parameters or from flags), and a client certificate can
//! be required; another CA is refused with an error that says why.

mod common;
#[allow(dead_code)]
#[path = "tls/pki.rs"]
mod pki;

use common::{TestApp, config, pg_server::PgServer};
use keyward::proto::v1 as pb;

/// A server with ssl=on that refuses plaintext, its CA's file, and the CA.
struct TlsServer {
    server: PgServer,
    ca: pki::Ca,
    ca_file: std::path::PathBuf,
    _files: tempfile::TempDir,
}

fn start(client_certs: bool) -> Option<TlsServer> {
    let bin = common::pg_server::require()?;
    let mut server = PgServer::init(&bin);
    let ca = pki::Ca::new("keyward test postgres CA");
    let leaf = ca.server("postgres", 7);
    server.write_private("server.crt", &leaf.cert);
    server.write_private("server.key", &leaf.key);
    server.write_private("ca.crt", &ca.pem);
    // TLS only: a plaintext connection finds no pg_hba line.
    let auth = if client_certs {
        "trust clientcert=verify-full"
    } else {
        "trust"
    };
    server.write_private(
        "pg_hba.conf",
        &format!("local all all trust\nhostssl all all 127.0.0.1/32 {auth}\n"),
    );
    let data = server.data_dir();
    let setting = |name: &str, file: &str| format!("{name}={}", data.join(file).display());
    server.start_with(&[
        "ssl=on",
        &setting("ssl_cert_file", "server.crt"),
        &setting("ssl_key_file", "server.key"),
        &setting("ssl_ca_file", "ca.crt"),
        &setting("hba_file", "pg_hba.conf"),
    ]);
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    Some(TlsServer {
        server,
        ca,
        ca_file,
        _files: files,
    })
}

/// Issues a key through `app` and verifies it: the store answered over TLS.
async fn round_trip(app: &TestApp) {
    let mut api = app.api().await;
    let label = format!("tls-{}", ulid::Ulid::new());
    let (key, _) = api.issue_key("acme", &label, &["orders:read"]).await;
    let verdict = api.verify(&key, &["orders:read"]).await;
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(common::client::reason(&verdict), pb::Reason::Ok);
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_works_from_the_url_or_from_flags() {
    let Some(tls) = start(false) else { return };
    // The host must match the certificate's names: localhost, 127.0.0.1.
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        tls.server.port,
        tls.ca_file.display()
    );
    let app = TestApp::spawn_with(config(&url, &[]), None).await;
    round_trip(&app).await;
    app.stop().await;

    let plain = tls.server.url("");
    let ca = tls.ca_file.display().to_string();
    let flags = [
        "--database-ssl-mode",
        "verify-full",
        "--database-ssl-root-cert",
        ca.as_str(),
    ];
    let app = TestApp::spawn_with(config(&plain, &flags), None).await;
    round_trip(&app).await;
    app.stop().await;

    // Without TLS the server has no pg_hba line for us: TLS was in use.
    let refused = refused_start(
        &plain,
        &["--database-ssl-mode", "disable"],
        "a plaintext connection must be refused",
    )
    .await;
    assert!(refused.contains("no pg_hba.conf entry"), "{refused}");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let Some(tls) = start(false) else { return };
    let other = pki::Ca::new("not the server's CA");
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, &other.pem).unwrap();
    let wrong = wrong.display().to_string();
    let url = format!(
        "postgres://postgres:hunter2@localhost:{}/postgres",
        tls.server.port
    );
    for mode in ["verify-full", "verify-ca"] {
        let flags = [
            "--database-ssl-mode",
            mode,
            "--database-ssl-root-cert",
            wrong.as_str(),
            "--database-timeout",
            "1s",
        ];
        let text = refused_start(
            &url,
            &flags,
            "an untrusted server certificate must be refused",
        )
        .await;
        println!("{mode} with another CA: {text}");
        assert!(
            text.contains("cannot migrate the database"),
            "{mode}: {text}"
        );
        assert!(
            text.to_ascii_lowercase().contains("certificate"),
            "{mode}: the error must name the certificate: {text}"
        );
        assert!(!text.contains("hunter2"), "{mode}: {text}");
    }
    // verify-full matches an IP address too: 127.0.0.1 is among the
    // certificate's names.
    let ca = tls.ca_file.display().to_string();
    let flags = [
        "--database-ssl-mode",
        "verify-full",
        "--database-ssl-root-cert",
        ca.as_str(),
    ];
    let by_ip = format!("postgres://postgres@127.0.0.1:{}/postgres", tls.server.port);
    let app = TestApp::spawn_with(config(&by_ip, &flags), None).await;
    round_trip(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_certificate_from_flags_is_presented_when_the_server_requires_one() {
    let Some(tls) = start(true) else { return };
    let client = tls.ca.client("postgres");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("client.crt"), dir.path().join("client.key"));
    std::fs::write(&cert, &client.cert).unwrap();
    std::fs::write(&key, &client.key).unwrap();
    let (cert, key, ca) = (
        cert.display().to_string(),
        key.display().to_string(),
        tls.ca_file.display().to_string(),
    );
    let url = format!("postgres://postgres@localhost:{}/postgres", tls.server.port);
    let mut flags = vec![
        "--database-ssl-mode",
        "verify-full",
        "--database-ssl-root-cert",
        ca.as_str(),
        "--database-timeout",
        "1s",
    ];
    let refused = refused_start(
        &url,
        &flags,
        "without a client certificate the server refuses",
    )
    .await;
    assert!(refused.contains("cannot migrate"), "{refused}");
    flags.extend([
        "--database-ssl-cert",
        cert.as_str(),
        "--database-ssl-key",
        key.as_str(),
    ]);
    let app = TestApp::spawn_with(config(&url, &flags), None).await;
    round_trip(&app).await;
    app.stop().await;
}

/// Builds keyward on `url` with `flags`, which must fail (`why` says why it
/// must); the error with its causes.
async fn refused_start(url: &str, flags: &[&str], why: &str) -> String {
    let error = keyward::startup::Application::build(config(url, flags))
        .await
        .err()
        .expect(why);
    format!("{error:#}")
}
