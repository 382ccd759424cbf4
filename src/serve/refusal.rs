//! Why the transport, rather than a handler, ended a call. Each becomes a
//! gRPC status in `grpc/status.rs`, the one place statuses are made.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The global in-flight limit is reached: the call is shed, not queued.
    #[error("the server is at its limit of calls in flight; retry with backoff")]
    Overloaded,
    /// The request body did not arrive within the request timeout.
    #[error("the request did not arrive within the server's request timeout")]
    RequestTimeout,
    /// The handler panicked; the detail is logged, never sent.
    #[error("internal error")]
    Panicked,
}
