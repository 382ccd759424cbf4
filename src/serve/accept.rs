//! The one accept loop of the gRPC port, plaintext or TLS.
//!
//! - Errors that concern the whole listener (out of file descriptors,
//!   out of memory) back off exponentially instead of spinning: the pending
//!   connection stays in the kernel's backlog and is retried. Each is
//!   counted in `keyward_accept_errors_total`.
//! - Past `--max-connections` a connection is accepted and closed at once
//!   (`keyward_connections_refused_total`), so nothing queues without bound
//!   and the clients that are already connected keep being served.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::sync::CancellationToken;

/// Something connections are accepted from: a TCP listener, or a fake in
/// tests.
pub trait Listener: Send + 'static {
    type Io: Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (tcp, peer) = TcpListener::accept(self).await?;
        // Calls are small: do not hold a response back for Nagle.
        let _ = tcp.set_nodelay(true);
        Ok((tcp, peer))
    }
}

/// Waits between failed accepts: doubling from `MIN` up to `MAX`, back to
/// `MIN` once an accept succeeds.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Self { next: Self::MIN }
    }

    fn step(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }

    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// Accepts from `listener` until `stop` is cancelled (the listener is then
/// dropped, which closes a listening socket). Each connection that fits
/// under `connections` is given to `admit` with the permit it must hold for
/// as long as it is open.
pub async fn run<L: Listener>(
    mut listener: L,
    connections: Arc<Semaphore>,
    stop: CancellationToken,
    mut admit: impl FnMut(L::Io, SocketAddr, OwnedSemaphorePermit),
) {
    let accept_errors = metrics::counter!("keyward_accept_errors_total");
    let refused = metrics::counter!("keyward_connections_refused_total");
    let mut backoff = Backoff::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (io, peer) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(error) if per_connection(&error) => continue,
            Err(error) => {
                accept_errors.increment(1);
                let wait = backoff.step();
                // At most one line per wait, so a long EMFILE spell cannot
                // flood the logs either.
                tracing::warn!(%error, ?wait, "cannot accept a connection; backing off");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => admit(io, peer, permit),
            Err(_) => {
                refused.increment(1);
                tracing::debug!(%peer, "connection refused: at --max-connections");
                drop(io);
            }
        }
    }
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
    use std::sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// Fails `failures` times as a process out of descriptors does (EMFILE),
    /// then yields `connections` connections, then waits forever.
    struct Scripted {
        attempts: Arc<AtomicUsize>,
        failures: usize,
        connections: usize,
    }

    impl Listener for Scripted {
        type Io = usize;

        async fn accept(&mut self) -> io::Result<(usize, SocketAddr)> {
            let n = self.attempts.fetch_add(1, Ordering::SeqCst);
            // Ready at once, as a real accept is under EMFILE: a loop
            // without backoff would come straight back.
            tokio::task::yield_now().await;
            if n < self.failures {
                return Err(io::Error::from_raw_os_error(24));
            }
            if n < self.failures + self.connections {
                return Ok((n, "127.0.0.1:1".parse().unwrap()));
            }
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn out_of_descriptors_backs_off_instead_of_spinning() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let listener = Scripted {
            attempts: attempts.clone(),
            failures: usize::MAX,
            connections: 0,
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            listener,
            Arc::new(Semaphore::new(1)),
            stop.clone(),
            |_, _, _| panic!("nothing is accepted"),
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("a backing-off loop still stops at once")
            .unwrap();
        // 5 + 10 + 20 + 40 + 80 + 160 ms fit in 500 ms: about 7 attempts.
        // A loop without backoff makes tens of thousands.
        let made = attempts.load(Ordering::SeqCst);
        assert!((3..=10).contains(&made), "{made} accept attempts in 500 ms");
    }

    #[tokio::test]
    async fn accepting_resumes_after_errors_and_refuses_past_the_limit() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let listener = Scripted {
            attempts: attempts.clone(),
            failures: 3,
            connections: 3,
        };
        let admitted = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let sink = admitted.clone();
        let connections = Arc::new(Semaphore::new(2));
        let task = tokio::spawn(run(
            listener,
            connections.clone(),
            stop.clone(),
            move |io, _, permit| sink.lock().unwrap().push((io, permit)),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while attempts.load(Ordering::SeqCst) < 7 {
            assert!(tokio::time::Instant::now() < deadline, "accepting stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        task.await.unwrap();
        let admitted = admitted.lock().unwrap();
        // Connections 3 and 4 hold the two permits; 5 was closed at once.
        let ids: Vec<usize> = admitted.iter().map(|(io, _)| *io).collect();
        assert_eq!(ids, vec![3, 4]);
        assert_eq!(connections.available_permits(), 0);
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let mut backoff = Backoff::new();
        let waits: Vec<_> = (0..10).map(|_| backoff.step()).collect();
        assert_eq!(waits[0], Backoff::MIN);
        assert_eq!(waits[1], Backoff::MIN * 2);
        assert_eq!(*waits.last().unwrap(), Backoff::MAX);
        backoff.reset();
        assert_eq!(backoff.step(), Backoff::MIN);
    }
}
