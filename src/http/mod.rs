//! The HTTP side of the main port: everything a request that is not gRPC
//! reaches (forward auth under `/authz/`, the Connect protocol, gRPC-Web,
//! leak reports, the console).
//!
//! One router and one middleware stack for all of them: the transport
//! (`serve::call`) classifies each request ([`kind`]), sends gRPC to tonic
//! and everything else to the [`Router`], after the same shedding, body
//! deadline, connection info and panic catching as gRPC. A request the
//! router does not know is `404`: outside the console's own pages under
//! `/ui/`, nothing but a decision to allow ever answers 2xx, so a gateway
//! pointed at a wrong path fails closed.
//!
//! - [`kind`]: gRPC, gRPC-Web or plain HTTP, from the path and content-type.
//! - [`router`]: the [`Endpoint`] trait and the mounts, matched on the raw
//!   path before any normalisation.
//! - [`reply`]: small responses (`404`, `503`...) with no body to parse.
//! - [`body`]: reading a request body within a size limit.
//! - [`authz`]: forward auth for gateways (`/authz/envoy/…`,
//!   `/authz/nginx`, `/authz/forwarded`).
//! - [`leaks`]: `POST /leaks/github`, GitHub's secret-scanning reports.
//! - [`console`]: the web console under `/ui/` (`--console`).
//! - [`status`]: the one place a gRPC code or a transport refusal becomes
//!   an HTTP status.

pub mod authz;
pub mod body;
pub mod connect;
pub mod console;
pub mod cors;
pub mod grpc_web;
pub mod kind;
pub mod leaks;
pub mod reply;
pub mod router;
pub mod status;

pub use kind::Kind;
pub use router::{BoxResponse, Endpoint, HttpRequest, HttpResponse, Mount, Router};
