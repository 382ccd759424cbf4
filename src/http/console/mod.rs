//! The console: server-rendered HTML under `/ui/` on the main port, for
//! people who own an API and want to look rather than type.
//!
//! Every read and every action is a call into the same KeyService
//! implementation gRPC and Connect use, in-process, with the session's
//! admin key as `authorization: Bearer` metadata and the browser's
//! connection info as extensions. So the console can do exactly what that
//! admin key can do over gRPC, and every change is audited with it as the
//! actor and the browser's address as the source.
//!
//! - [`session`]: random session id → admin key, held server-side only.
//! - [`csrf`]: the per-session token every POST must carry.
//! - [`respond`]: HTML answers with the security headers.
//! - [`rpc`]: the in-process calls.
//! - [`route`]: path and method → page.
//! - [`pages`]: one module per page.
//! - [`chart`], [`unusual`]: server-side SVG, and which keys look odd.

mod args;
mod chart;
mod csrf;
mod error;
mod form;
mod html;
mod pages;
mod respond;
mod route;
mod rpc;
mod session;
mod unusual;

use std::sync::Arc;

pub use args::ConsoleArgs;
pub use error::ConsoleError;
pub use route::MOUNT;

use crate::{
    grpc::key_service::KeyServiceImpl,
    http::{BoxResponse, Endpoint, HttpRequest},
    verify::Verifier,
};

/// The console endpoint.
pub struct Console {
    inner: Arc<route::Context>,
}

impl Console {
    /// `secure`: the port serves TLS, so the session cookie is `Secure`.
    pub fn new(
        service: Arc<KeyServiceImpl>,
        verifier: Verifier,
        args: &ConsoleArgs,
        secure: bool,
    ) -> Self {
        Self {
            inner: Arc::new(route::Context {
                rpc: rpc::Rpc::new(service, verifier),
                sessions: session::Sessions::new(args.console_session_ttl),
                secure,
            }),
        }
    }
}

impl Endpoint for Console {
    fn call(&self, request: HttpRequest) -> BoxResponse {
        let context = self.inner.clone();
        Box::pin(async move { route::handle(&context, request).await })
    }
}
