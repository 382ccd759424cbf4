//! The main port: accepting connections, bounding what each may hold, and
//! serving gRPC and HTTP on them with hyper.
//!
//! - [`limits`]: the settings (`--max-connections`, timeouts, HTTP/2
//!   windows...), one flag and `KEYWARD_*` variable each.
//! - [`accept`]: the one accept loop, plaintext or TLS, with backoff on
//!   listener errors and connections past the limit closed at once.
//! - `connection`: one connection, closed when idle, drained on shutdown.
//! - `call`: one call: classified, shed past the in-flight limit, body
//!   deadline, the client's address for the handlers, panics caught.
//! - [`handlers`]: tonic's routes and the HTTP router it is sent to.
//!
//! Metrics: `keyward_accept_errors_total`, `keyward_connections_refused_total`,
//! `keyward_connections_idle_closed_total`, `keyward_calls_shed_total`,
//! `keyward_request_timeouts_total`, `keyward_handler_panics_total` (and,
//! with TLS, `keyward_tls_handshake_failures_total` and
//! `keyward_tls_empty_connections_total`), described and zeroed in
//! `telemetry::metrics`.

pub mod accept;
mod activity;
mod call;
mod connection;
mod deadline;
pub mod handlers;
pub mod limits;
mod panic;
mod refusal;

use std::{future::Future, sync::Arc};

pub use handlers::Handlers;
pub use limits::Limits;
pub use refusal::Refusal;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

use crate::tls::{self, ReloadingConfig};

use connection::Shared;

/// How accepted TCP connections are turned into HTTP ones.
#[derive(Clone)]
pub enum Transport {
    Plaintext,
    Tls(Arc<ReloadingConfig>),
}

/// Serves `handlers` on `listener` until `shutdown` completes; then stops
/// accepting (closing the listening socket), asks every connection to
/// finish its calls, and returns once all have closed. Dropping the
/// returned future (the drain deadline) drops every connection with it.
pub async fn serve(
    listener: TcpListener,
    transport: Transport,
    handlers: Handlers,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    tracing::info!(
        max_connections = limits.max_connections,
        max_in_flight = limits.max_in_flight,
        buffered_bytes_per_connection = limits.connection_buffer_bound(),
        buffered_bytes_total = limits.total_buffer_bound(),
        "resource limits"
    );
    let shared = Arc::new(Shared::new(handlers, limits));
    let connections = Arc::new(Semaphore::new(limits.max_connections as usize));
    let drain = CancellationToken::new();
    let abort = CancellationToken::new();
    let _abort_when_dropped = abort.clone().drop_guard();
    let stop_accepting = CancellationToken::new();
    let header_read_timeout = limits.header_read_timeout;
    let admit = |tcp: tokio::net::TcpStream, peer, permit| {
        let (shared, drain, abort, transport) = (
            shared.clone(),
            drain.clone(),
            abort.clone(),
            transport.clone(),
        );
        tokio::spawn(async move {
            // Held until the connection is gone: `--max-connections` counts
            // handshakes too.
            let _permit = permit;
            match transport {
                Transport::Plaintext => connection::serve(tcp, &shared, &drain, &abort).await,
                Transport::Tls(config) => {
                    let handshake =
                        tls::handshake(tcp, peer, config.current(), header_read_timeout);
                    let stream = tokio::select! {
                        () = abort.cancelled() => return,
                        stream = handshake => stream,
                    };
                    if let Some(stream) = stream {
                        connection::serve(stream, &shared, &drain, &abort).await;
                    }
                }
            }
        });
    };
    tokio::select! {
        () = accept::run(listener, connections.clone(), stop_accepting.clone(), admit) => {}
        () = shutdown => stop_accepting.cancel(),
    }
    drain.cancel();
    // Every connection holds a permit until it is gone.
    let _all_closed = connections.acquire_many(limits.max_connections).await;
}
