//! `envoy.service.auth.v3.Authorization/Check`: Envoy's request attributes
//! in, [`Authz::check`], Envoy's answer out.
//!
//! Allowed: status OK, identity headers set (overwriting any the client
//! sent), the credential removed. Denied: status PERMISSION_DENIED with the
//! constant refusal of [`crate::authz::Refusal`]. Undecidable: a gRPC error
//! (UNAVAILABLE), so Envoy fails closed. Dynamic metadata (`decision`,
//! `reason`, `key_id`, `project`, `scopes`; `required_scopes` when refused,
//! `observe` in observe mode) goes to Envoy for its access logs.
//!
//! The messages are keyward's trimmed ones ([`check_request`],
//! [`check_response`]), served by [`authorization_server`] under Envoy's
//! service name; reflection still describes Envoy's full messages, which
//! have the same wire format.
//!
//! [`check_request`]: super::check_request
//! [`check_response`]: super::check_response
//! [`authorization_server`]: super::authorization_server

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{check_request::CheckRequest, check_response::CheckResponse};
use crate::{
    authz::{Authz, CheckInput},
    error::Error,
    telemetry::{decision::Observed, metrics::Rpc, otel},
};

pub use super::check_response::check_response;

/// Largest Check request decoded. Envoy forwards up to 60 KiB of request
/// headers by default (`max_request_headers_kb`) plus the path and
/// attributes; a bigger request fails the check, which Envoy treats as a
/// denial.
pub const MAX_CHECK_BYTES: usize = 128 * 1024;

pub struct ExtAuthzService {
    authz: Arc<Authz>,
}

impl ExtAuthzService {
    pub fn new(authz: Arc<Authz>) -> Self {
        Self { authz }
    }

    pub async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let request = request.into_inner();
        let attributes = request.attributes();
        // The caller's trace context travels in the checked request's
        // headers (the `headers` map, as before `header_map` was read).
        let observed =
            Observed::start(Rpc::Check, || otel::from_headers(&attributes.headers.map()));
        let input = CheckInput {
            method: attributes.method,
            path: attributes.path,
            headers: &attributes.headers,
            context: &attributes.context,
            peer: attributes.peer,
        };
        let answer = match self.authz.check(&input).await {
            Ok(answer) => answer,
            Err(error) => {
                observed.finish_check(None);
                return Err(Error::from(error).into());
            }
        };
        let response = check_response(&answer);
        observed.finish_check(Some(&answer));
        Ok(Response::new(response))
    }
}
