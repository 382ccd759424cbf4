//! TLS and mTLS on the gRPC port, with certificates made in the test
//! (rcgen): who may connect, renewal without a restart, and the CLI over
//! TLS. TLS does not depend on the store, so these run on SQLite only.

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Output,
    sync::Arc,
    time::Duration,
};

use keyward::{
    proto::v1::{self as pb, key_service_client::KeyServiceClient},
    store::AuditQuery,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, ServerName},
    },
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use common::{TestApp, TestDb, with_key};

const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// A certificate authority made for one test.
struct Ca {
    der: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM, and the certificate as DER.
struct Leaf {
    cert: String,
    key: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    fn server(&self, name: &str, serial: u64) -> Leaf {
        self.leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            name,
            serial,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self, name: &str) -> Leaf {
        self.leaf(vec![], name, 100, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(
        &self,
        names: Vec<String>,
        name: &str,
        serial: u64,
        usage: ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// A directory laid out as the kubelet mounts a `kubernetes.io/tls`
/// Secret: `tls.crt` → `..data/tls.crt`, `..data` → a timestamped
/// directory that a renewal replaces by swapping the symlink.
struct SecretDir {
    dir: tempfile::TempDir,
    version: u32,
}

impl SecretDir {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Publishes a new version of the files, atomically, as the kubelet does.
    fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version = format!("..2026_01_01_00_00_{:02}.{}", self.version, self.version);
        let data = self.path(&version);
        std::fs::create_dir(&data).unwrap();
        for (name, text) in files {
            std::fs::write(data.join(name), text).unwrap();
        }
        let tmp = self.path("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.path("..data")).unwrap();
        for (name, _) in files {
            let link = self.path(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
    }

    fn publish_server(&mut self, leaf: &Leaf, client_ca: Option<&Ca>) {
        let mut files = vec![
            ("tls.crt", leaf.cert.as_str()),
            ("tls.key", leaf.key.as_str()),
        ];
        if let Some(ca) = client_ca {
            files.push(("ca.crt", ca.pem.as_str()));
        }
        self.publish(&files);
    }

    fn server_args(&self, mutual: bool) -> Vec<String> {
        let mut args = vec![
            "--tls-cert".to_owned(),
            self.path("tls.crt").display().to_string(),
            "--tls-key".to_owned(),
            self.path("tls.key").display().to_string(),
        ];
        if mutual {
            args.push("--tls-client-ca".to_owned());
            args.push(self.path("ca.crt").display().to_string());
        }
        args
    }
}

async fn spawn(db: &TestDb, args: &[String]) -> TestApp {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestApp::spawn_with(common::config(&db.url, &args), None).await
}

fn https(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}", addr.port())
}

fn trusting(ca: &Ca) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem))
}

async fn connect(
    addr: SocketAddr,
    tls: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(https(addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
}

async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "keyward.v1.KeyService".into(),
        })
        .await?;
    Ok(response.into_inner().status)
}

/// Whether a client with `tls` gets a health answer: a refused client
/// fails either its handshake or (TLS 1.3 reports a rejected client
/// certificate after the handshake) its first call.
async fn admitted(addr: SocketAddr, tls: ClientTlsConfig) -> bool {
    match connect(addr, tls).await {
        Ok(channel) => match health(channel).await {
            Ok(status) => {
                assert_eq!(status, ServingStatus::Serving as i32);
                true
            }
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// The certificate the server presents to a new connection, read from a
/// raw rustls handshake.
async fn served_certificate(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(keyward::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (_, session) = stream.get_ref();
    assert_eq!(
        session.alpn_protocol(),
        Some(&b"h2"[..]),
        "the server selects h2"
    );
    session.peer_certificates().unwrap()[0].clone().into_owned()
}

async fn issue(channel: Channel, admin: &str, label: &str) -> pb::IssueResponse {
    let request = pb::IssueRequest {
        project: "acme".into(),
        label: label.into(),
        scopes: vec!["orders:read".into()],
        ..Default::default()
    };
    KeyServiceClient::new(channel)
        .issue(with_key(request, admin))
        .await
        .unwrap()
        .into_inner()
}

async fn verify(channel: Channel, key: &str) -> pb::VerifyResponse {
    let request = pb::VerifyRequest {
        key: key.into(),
        required_scopes: vec!["orders:read".into()],
        client_ip: String::new(),
    };
    KeyServiceClient::new(channel)
        .verify(request)
        .await
        .unwrap()
        .into_inner()
}

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
    let admin = app.bootstrap().await;
    let issued = issue(channel.clone(), &admin, "over-tls").await;
    let verdict = verify(channel, &issued.key).await;
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
        let config = common::config(&db.url, &args);
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

    let admin = app.bootstrap().await;
    let issued = issue(
        connect(app.addr, trusting(&ca)).await.unwrap(),
        &admin,
        "cli",
    )
    .await;

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
