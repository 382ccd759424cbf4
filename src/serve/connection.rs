//! Serves one established connection (TCP or TLS) with hyper, until the
//! client leaves, it has been idle for the idle timeout, the server drains,
//! or the drain deadline passes.
//!
//! Transport-generic: anything `AsyncRead + AsyncWrite` that tonic can read
//! an address from. The builder is hyper-util's `auto` one: HTTP/2 (with
//! prior knowledge in cleartext, or by ALPN with TLS) and HTTP/1.1, told
//! apart by the connection preface.

use std::{sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::Semaphore,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::{Limits, activity::Activity, call::Calls, handlers::Handlers};

/// How long a closing connection that never made a call is given to send
/// its GOAWAY before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every connection of one server shares.
pub struct Shared {
    builder: auto::Builder<TokioExecutor>,
    handlers: Handlers,
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
    idle_timeout: Duration,
}

impl Shared {
    pub fn new(handlers: Handlers, limits: &Limits) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .initial_stream_window_size(limits.http2_stream_window)
            .initial_connection_window_size(limits.http2_connection_window)
            .max_frame_size(limits.http2_max_frame_size)
            .max_header_list_size(limits.http2_max_header_list_size)
            .keep_alive_interval(limits.http2_keepalive_interval)
            .keep_alive_timeout(limits.http2_keepalive_timeout);
        // hyper only enforces the header-read timeout with a timer. The
        // buffer bounds one request's head as HTTP/2 bounds its header list.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.http1_max_buf_size());
        Self {
            builder,
            handlers,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            request_timeout: limits.request_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }
}

/// Serves `io` until it closes. `drain` asks it to finish its calls and go
/// (HTTP/2 GOAWAY); `abort` drops it where it stands.
pub async fn serve<IO>(
    io: IO,
    shared: &Shared,
    drain: &CancellationToken,
    abort: &CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    let activity = Arc::new(Activity::default());
    let calls = Calls {
        handlers: shared.handlers.clone(),
        connect_info: io.connect_info(),
        in_flight: shared.in_flight.clone(),
        activity: activity.clone(),
        request_timeout: shared.request_timeout,
    };
    let connection = shared.builder.serve_connection(TokioIo::new(io), calls);
    tokio::pin!(connection);
    let mut idle_at = Instant::now() + shared.idle_timeout;
    // A call counts from its request until its response headers: a
    // connection whose only calls are long streams (health Watch) is told
    // GOAWAY after the idle timeout too, and hyper keeps it until they end.
    let mut closing = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = abort.cancelled() => return,
            () = drain.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
                idle_at = Instant::now() + CLOSE_GRACE;
            }
            // hyper defers a GOAWAY until the client has finished its HTTP/2
            // handshake, so one that never sends it (or never sends a
            // byte) is dropped here, a grace after it was told to go.
            () = tokio::time::sleep_until(idle_at), if !(closing && activity.has_served()) => {
                let now = Instant::now();
                idle_at = match activity.idle_until(shared.idle_timeout) {
                    // Busy: look again an idle timeout from now.
                    None => now + shared.idle_timeout,
                    // Idle counts from the end of the last call, which may
                    // have come after this timer was set.
                    Some(due) if !closing => due,
                    // Closing, and no call was ever made: its grace is over.
                    Some(_) => now,
                };
                if idle_at > now {
                    continue;
                }
                if closing {
                    return;
                } else {
                    metrics::counter!("keyward_connections_idle_closed_total").increment(1);
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                    idle_at = Instant::now() + CLOSE_GRACE;
                }
            }
        }
    }
}
