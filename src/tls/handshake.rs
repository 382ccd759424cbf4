//! The TLS handshake of one accepted connection.
//!
//! It runs in the connection's own task (see `serve`), bounded by the
//! header-read timeout, so a plaintext client, a port scanner or a TCP
//! probe costs one short task and a debug log line, never the accept loop.
//!
//! A connection that closes, or stays silent until the timeout, before
//! sending its first byte never began a handshake: it is counted in
//! `keyward_tls_empty_connections_total`, not in
//! `keyward_tls_handshake_failures_total`. Kubernetes TCP probes and load
//! balancer health checks connect and close like that every few seconds;
//! counting them as failures would hide real ones (bad certificates,
//! plaintext clients) in a steady false rate.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpStream, time::Instant};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig, server::TlsStream};

/// Completes the server side of a TLS handshake on `tcp` within `timeout`;
/// `None` (after counting why) when the client does not.
pub async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    let deadline = Instant::now() + timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        // Closed (0 bytes or reset) or silent: no handshake was attempted.
        _ => {
            metrics::counter!("keyward_tls_empty_connections_total").increment(1);
            tracing::debug!(%peer, "connection closed before its first byte");
            return None;
        }
    }
    match tokio::time::timeout_at(deadline, TlsAcceptor::from(config).accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            handshake_failed(peer, &error.to_string());
            None
        }
        Err(_) => {
            handshake_failed(peer, "timed out");
            None
        }
    }
}

fn handshake_failed(peer: SocketAddr, error: &str) {
    metrics::counter!("keyward_tls_handshake_failures_total").increment(1);
    // Debug, not warn: scanners and plaintext clients fail handshakes all day.
    tracing::debug!(%peer, error, "TLS handshake failed");
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };
    use tokio_rustls::{
        TlsConnector,
        rustls::{ClientConfig, RootCertStore, pki_types::ServerName},
    };

    use super::*;
    use crate::tls::{ServerTls, TlsFiles, pem, provider, test_pki::Ca};

    struct Fixture {
        _dir: tempfile::TempDir,
        ca: Ca,
        tls: ServerTls,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test ca");
        let (cert, key) = ca.leaf("server");
        let files = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            client_ca: None,
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        let tls = ServerTls::load(files, Duration::ZERO).unwrap();
        Fixture { _dir: dir, ca, tls }
    }

    fn connector(ca: &Ca) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        let certs = pem::certificates(ca.pem.as_bytes(), "ca".as_ref(), "CA").unwrap();
        roots.add_parsable_certificates(certs);
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsConnector::from(Arc::new(config))
    }

    /// Accepts one connection on a fresh listener, connects to it with
    /// `client`, and returns what the server-side handshake made of it.
    async fn one(
        fixture: &Fixture,
        timeout: Duration,
        client: impl AsyncFnOnce(SocketAddr),
    ) -> Option<TlsStream<TcpStream>> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = fixture.tls.config().current();
        let server = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            handshake(tcp, peer, config, timeout).await
        });
        client(addr).await;
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the handshake is bounded")
            .unwrap()
    }

    /// Runs `body` with a private metrics recorder; returns its rendering.
    fn counted(body: impl AsyncFnOnce()) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || runtime.block_on(body()));
        handle.render()
    }

    #[test]
    fn probes_are_not_handshake_failures_but_plaintext_clients_are() {
        let fixture = fixture();
        let text = counted(async || {
            // A TCP probe: connect, close, no byte.
            let probed = one(&fixture, Duration::from_secs(5), async |addr| {
                drop(TcpStream::connect(addr).await.unwrap());
            })
            .await;
            assert!(probed.is_none());
            // A plaintext HTTP/2 client: bytes, but no ClientHello.
            let plain = one(&fixture, Duration::from_secs(5), async |addr| {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                    .await
                    .unwrap();
                let mut reply = Vec::new();
                let _ = tcp.read_to_end(&mut reply).await;
            })
            .await;
            assert!(plain.is_none());
        });
        assert!(
            text.contains("keyward_tls_empty_connections_total 1"),
            "{text}"
        );
        assert!(
            text.contains("keyward_tls_handshake_failures_total 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_good_client_completes_its_handshake() {
        let fixture = fixture();
        let connector = connector(&fixture.ca);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let accepted = one(&fixture, Duration::from_secs(5), async |addr| {
            let client = tokio::spawn(async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let stream = connector.connect(name, tcp).await.unwrap();
                let _ = rx.await;
                drop(stream);
            });
            drop(client);
        })
        .await
        .expect("handshake completes");
        assert_eq!(accepted.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let _ = tx.send(());
    }

    #[tokio::test]
    async fn stalled_handshakes_time_out() {
        let fixture = fixture();
        let started = Instant::now();
        let mut held = None;
        let stalled = one(&fixture, Duration::from_millis(200), async |addr| {
            // One byte of a ClientHello, then nothing.
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(&[0x16]).await.unwrap();
            held = Some(tcp);
        })
        .await;
        assert!(stalled.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
