//! The `keyward keys` CLI over TLS: a CA file, and a client certificate
//! under mTLS.

use std::process::Output;

use super::{connect::*, pki::*};
use crate::common::{TestDb, client::issue_request, process::BIN};

/// Runs `keyward keys ARGS` against `server` with the given environment.
async fn keys(server: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command.arg("keys").args(args).env("KEYWARD_SERVER", server);
    for name in [
        "KEYWARD_ADMIN_KEY",
        "KEYWARD_KEY",
        "KEYWARD_CA_FILE",
        "KEYWARD_CLIENT_CERT",
        "KEYWARD_CLIENT_KEY",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_cli_talks_tls_with_a_ca_file() {
    let ca = Ca::new("keyward test CA");
    let mut dir = SecretDir::new();
    dir.publish_server(&ca.server("keyward", 1), Some(&ca));
    let db = TestDb::sqlite();
    let app = spawn(&db, &dir.server_args(false)).await;
    let server = https(app.addr);
    let ca_file = dir.path("ca.crt").display().to_string();

    let mut api = api_over(&app, connect(app.addr, trusting(&ca)).await.unwrap()).await;
    let issued = api
        .issue(issue_request("acme", "cli", &["orders:read"]))
        .await;
    let admin = api.admin.clone();

    let verified = keys(
        &server,
        &["verify", "--ca-file", &ca_file, "--scope", "orders:read"],
        &[("KEYWARD_KEY", &issued.key)],
    )
    .await;
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));

    let listed = keys(
        &server,
        &["--json", "list", "--project", "acme"],
        &[("KEYWARD_ADMIN_KEY", &admin), ("KEYWARD_CA_FILE", &ca_file)],
    )
    .await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let id = issued.info.unwrap().id;
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));

    // Without the CA file the system's roots do not know this server.
    let untrusted = keys(
        &server,
        &["list", "--project", "acme"],
        &[("KEYWARD_ADMIN_KEY", &admin)],
    )
    .await;
    assert!(!untrusted.status.success());
    let error = stderr(&untrusted);
    assert!(error.contains(&server), "{error}");
    assert!(!error.contains(&admin), "{error}");

    // TLS settings with an http:// URL are a mistake, not a downgrade.
    let downgraded = keys(
        &format!("http://{}", app.addr),
        &["list", "--ca-file", &ca_file],
        &[("KEYWARD_ADMIN_KEY", &admin)],
    )
    .await;
    assert!(!downgraded.status.success());
    assert!(
        stderr(&downgraded).contains("https://"),
        "{}",
        stderr(&downgraded)
    );
    app.stop().await;
}

#[tokio::test]
async fn the_cli_presents_a_client_certificate_under_mtls() {
    let ca = Ca::new("keyward test CA");
    let mut dir = SecretDir::new();
    dir.publish_server(&ca.server("keyward", 1), Some(&ca));
    let db = TestDb::sqlite();
    let app = spawn(&db, &dir.server_args(true)).await;
    let server = https(app.addr);
    let client = ca.client("operator");
    let client_dir = tempfile::tempdir().unwrap();
    let cert = client_dir.path().join("client.crt");
    let key = client_dir.path().join("client.key");
    std::fs::write(&cert, &client.cert).unwrap();
    std::fs::write(&key, &client.key).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let ca_file = dir.path("ca.crt").display().to_string();
    let admin = app.bootstrap().await;

    let listed = keys(
        &server,
        &[
            "list",
            "--ca-file",
            &ca_file,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
        ],
        &[("KEYWARD_ADMIN_KEY", &admin)],
    )
    .await;
    assert!(listed.status.success(), "{}", stderr(&listed));

    let from_env = keys(
        &server,
        &["list"],
        &[
            ("KEYWARD_ADMIN_KEY", &admin),
            ("KEYWARD_CA_FILE", &ca_file),
            ("KEYWARD_CLIENT_CERT", &cert),
            ("KEYWARD_CLIENT_KEY", &key),
        ],
    )
    .await;
    assert!(from_env.status.success(), "{}", stderr(&from_env));

    let refused = keys(
        &server,
        &["list", "--ca-file", &ca_file],
        &[("KEYWARD_ADMIN_KEY", &admin)],
    )
    .await;
    assert!(
        !refused.status.success(),
        "a client without a certificate is refused"
    );
    app.stop().await;
}
