//! Reaching the server over TLS: as a gRPC client would, and as a raw
//! handshake that shows which certificate it serves.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, ServerName},
    },
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::pki::Ca;
use crate::common::{TestApp, TestDb, client::Api};

pub async fn spawn(db: &TestDb, args: &[String]) -> TestApp {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestApp::spawn_with(crate::common::config(&db.url, &args), None).await
}

pub fn https(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}", addr.port())
}

pub fn trusting(ca: &Ca) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem))
}

pub async fn connect(
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

pub async fn health(channel: Channel) -> Result<i32, tonic::Status> {
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
pub async fn admitted(addr: SocketAddr, tls: ClientTlsConfig) -> bool {
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

/// A raw rustls connection to `addr` ("localhost", trusting `ca`),
/// offering one ALPN protocol.
pub async fn raw_tls(addr: SocketAddr, ca: &Ca, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(keyward::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// The certificate the server presents to a new connection, read from a
/// raw rustls handshake.
pub async fn served_certificate(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let stream = raw_tls(addr, ca, b"h2").await;
    let (_, session) = stream.get_ref();
    assert_eq!(
        session.alpn_protocol(),
        Some(&b"h2"[..]),
        "the server selects h2"
    );
    session.peer_certificates().unwrap()[0].clone().into_owned()
}

/// The one client over a TLS `channel` to `app`, with a bootstrapped admin key.
pub async fn api_over(app: &TestApp, channel: Channel) -> Api {
    Api::over(https(app.addr), channel, app.bootstrap().await)
}
