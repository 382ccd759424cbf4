//! The accept loop of the TLS port.
//!
//! tonic serves whatever stream of connections it is given; this one yields
//! only connections whose TLS handshake completed. Each handshake runs in a
//! task of its own, bounded by [`HANDSHAKE_TIMEOUT`], so a plaintext client,
//! a port scanner or a TCP probe costs one short task and a debug log line,
//! never the accept loop.

use std::{convert::Infallible, io, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;

use super::ReloadingConfig;

/// How long a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Established TLS connections, for `serve_with_incoming_shutdown`. tonic
/// implements `Connected` for them, so `Request::remote_addr` and
/// `Request::peer_certs` work as over plain TCP.
pub type TlsIncoming = ReceiverStream<Result<TlsStream<TcpStream>, Infallible>>;

/// Accepts on `listener` until the returned stream is dropped (tonic drops it
/// on shutdown), which also closes the listening socket.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ReloadingConfig>,
    handshake_timeout: Duration,
) -> TlsIncoming {
    // Established connections wait here until tonic takes them; a small
    // buffer is enough, tonic takes them as fast as they come.
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, config, handshake_timeout, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ReloadingConfig>,
    handshake_timeout: Duration,
    tx: mpsc::Sender<Result<TlsStream<TcpStream>, Infallible>>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if per_connection(&error) => continue,
            Err(error) => {
                // Out of file descriptors and the like: back off rather
                // than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(config.current());
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // Fails only when the server is stopping: the
                    // connection is then dropped.
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(error)) => handshake_failed(peer, &error.to_string()),
                Err(_) => handshake_failed(peer, "timed out"),
            }
        });
    }
}

fn handshake_failed(peer: std::net::SocketAddr, error: &str) {
    metrics::counter!("keyward_tls_handshake_failures_total").increment(1);
    // Debug, not warn: TCP probes and scanners fail handshakes all day.
    tracing::debug!(%peer, error, "TLS handshake failed");
}

/// Errors about one connection (the client gave up before it was
/// accepted), after which accepting goes on at once.
fn per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{
        TlsConnector,
        rustls::{ClientConfig, RootCertStore, pki_types::ServerName},
    };
    use tokio_stream::StreamExt;

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

    #[tokio::test]
    async fn failed_and_stalled_handshakes_do_not_stop_the_next_connection() {
        let fixture = fixture();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connections = incoming(listener, fixture.tls.config(), Duration::from_secs(30));

        // A plaintext gRPC client: its handshake fails, the server hangs up.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut reply))
            .await
            .expect("the server keeps a failed handshake open");
        // A client that connects and says nothing, holding its handshake.
        let _silent = TcpStream::connect(addr).await.unwrap();

        let connector = connector(&fixture.ca);
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.unwrap()
        });
        let accepted = tokio::time::timeout(Duration::from_secs(5), connections.next())
            .await
            .expect("a good client waits behind a failed or stalled one")
            .unwrap()
            .unwrap();
        assert_eq!(accepted.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        client.await.unwrap();
    }

    #[tokio::test]
    async fn stalled_handshakes_time_out() {
        let fixture = fixture();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _connections = incoming(listener, fixture.tls.config(), Duration::from_millis(100));
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut reply))
            .await
            .expect("a silent client is hung up on after the handshake timeout")
            .unwrap();
    }

    #[tokio::test]
    async fn dropping_the_stream_closes_the_listener() {
        let fixture = fixture();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(incoming(listener, fixture.tls.config(), HANDSHAKE_TIMEOUT));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "still listening");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
