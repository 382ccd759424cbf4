//! The console over TLS: its cookies carry `Secure`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    connect::{raw_tls, spawn},
    pki::*,
};
use crate::common::TestDb;

/// `GET path` over HTTP/1.1 in TLS; the answer's head.
async fn get_head(addr: std::net::SocketAddr, ca: &Ca, path: &str) -> String {
    let mut stream = raw_tls(addr, ca, b"http/1.1").await;
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
