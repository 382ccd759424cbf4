//! Forward auth on the main port: one endpoint per way a gateway names the
//! request it asks about ([`original`]), deciding through the same
//! [`Authz`] as ext_authz's `Check`, so the decisions, span
//! (`keyward.check`, with `keyward.http_mode`), metrics, usage counting
//! and limits are Check's.
//!
//! The required scopes come only from keyward's route rules: a
//! sub-request carries no context extensions, and nothing a client can
//! send (header, query, path) names scopes.

pub mod answer;
mod headers;
pub mod original;

use std::{net::IpAddr, sync::Arc};

use http::Extensions;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use self::{headers::Headers, original::Mode};
use crate::{
    authz::{Authz, CheckInput, Fields},
    error::Error,
    http::{BoxResponse, Endpoint, HttpRequest, HttpResponse, Router},
    telemetry::{decision::Observed, otel},
};

/// The endpoint of one [`Mode`].
pub struct ForwardAuth {
    authz: Arc<Authz>,
    mode: Mode,
}

impl ForwardAuth {
    pub fn new(authz: Arc<Authz>, mode: Mode) -> Self {
        Self { authz, mode }
    }
}

/// `router` with the three forward-auth endpoints mounted.
pub fn mount(router: Router, authz: &Arc<Authz>) -> Router {
    Mode::ALL.into_iter().fold(router, |router, mode| {
        router.mount(mode.mount(), ForwardAuth::new(authz.clone(), mode))
    })
}

impl Endpoint for ForwardAuth {
    fn call(&self, request: HttpRequest) -> BoxResponse {
        let (authz, mode) = (self.authz.clone(), self.mode);
        Box::pin(async move { decide(&authz, mode, request).await })
    }
}

/// No context extensions: a sub-request has none.
struct NoContext;

impl Fields for NoContext {
    fn field(&self, _name: &str) -> Option<&str> {
        None
    }
}

async fn decide(authz: &Authz, mode: Mode, request: HttpRequest) -> HttpResponse {
    // The body is never read: a sub-request needs none.
    let (parts, _body) = request.into_parts();
    let original = match original::rebuild(mode, &parts.method, &parts.uri, &parts.headers) {
        Ok(original) => original,
        Err(error) => {
            tracing::debug!(
                mode = mode.as_str(),
                reason = error.as_str(),
                %error,
                "forward auth: no original request"
            );
            return answer::failed(Error::invalid("original request", error.to_string()));
        }
    };
    let observed =
        Observed::start_forward_auth(mode.as_str(), || otel::from_http_headers(&parts.headers));
    let headers = Headers::new(&parts.headers, mode.ignored());
    let input = CheckInput {
        method: original.method,
        path: original.target,
        headers: &headers,
        context: &NoContext,
        peer: peer(&parts.extensions),
    };
    match authz.check(&input).await {
        Ok(decided) => {
            let response = answer::response(mode, &decided);
            observed.finish_check(Some(&decided));
            response
        }
        Err(error) => {
            observed.finish_check(None);
            answer::failed(Error::from(error))
        }
    }
}

/// The gateway's address: the connection's peer.
fn peer(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(info) = extensions.get::<TcpConnectInfo>() {
        return info.remote_addr().map(|a| a.ip());
    }
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
        .map(|a| a.ip())
}
