//! The console over TLS: its cookies carry `Secure`.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{
    TlsConnector,
    rustls::{ClientConfig, RootCertStore, pki_types::ServerName},
};

use super::{connect::spawn, pki::*};
use crate::common::TestDb;

/// `GET path` over HTTP/1.1 in TLS; the answer's head.
async fn get_head(addr: std::net::SocketAddr, ca: &Ca, path: &str) -> String {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(keyward::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .ok();
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn over_tls_the_console_cookies_are_secure() {
    let ca = Ca::new("keyward test CA");
    let mut dir = SecretDir::new();
    dir.publish_server(&ca.server("keyward", 1), None);
    let db = TestDb::sqlite();
    let app = spawn(&db, &dir.server_args(false)).await;
    let head = get_head(app.addr, &ca, "/ui/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: keyward_sign_in=")
        })
        .unwrap_or_else(|| panic!("no sign-in cookie: {head}"));
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    app.stop().await;
}
