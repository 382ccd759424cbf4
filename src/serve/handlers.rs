//! What the main port serves: tonic's gRPC routes and the HTTP router,
//! and how the transport refuses a call in the language of its caller.

use std::sync::Arc;

use ::http::Response;
use tonic::{Status, body::Body, service::Routes};

use super::Refusal;
use crate::http::{self, Kind, Router};

#[derive(Clone)]
pub struct Handlers {
    pub grpc: Routes,
    /// The gRPC services `grpc` holds (`keyward.v1.KeyService`...). A gRPC
    /// request for any other is `404` (which gRPC clients read as
    /// UNIMPLEMENTED) rather than tonic's `200` with `grpc-status: 12`: an
    /// HTTP ext_authz client that forwards a caller's gRPC content-type
    /// must never see a 2xx from a path that is not a decision.
    pub grpc_services: Arc<[&'static str]>,
    pub http: Router,
}

impl Handlers {
    pub fn grpc_only(grpc: Routes, grpc_services: &[&'static str]) -> Self {
        Self {
            grpc,
            grpc_services: grpc_services.into(),
            http: Router::new(),
        }
    }

    /// Whether `path` (`/<service>/<method>`) names a served gRPC service.
    pub fn serves_grpc(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let service = rest.split_once('/').map_or(rest, |(service, _)| service);
        self.grpc_services.contains(&service)
    }
}

/// The transport's refusal as its caller reads one: a gRPC status for gRPC
/// (and gRPC-Web, whose clients read the same trailers-only answer), a
/// plain HTTP status otherwise, never a 2xx.
pub fn refusal_response(kind: Kind, refusal: Refusal) -> Response<Body> {
    match kind {
        Kind::Grpc | Kind::GrpcWeb => Status::from(refusal).into_http(),
        Kind::Http => {
            let message = match refusal {
                Refusal::Overloaded => "the server is at its limit of calls in flight\n",
                Refusal::RequestTimeout => "the request did not arrive in time\n",
                Refusal::Panicked => "internal error\n",
            };
            http::reply::text(http::status::for_refusal(refusal), message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_services_are_grpc_routes() {
        let handlers = Handlers::grpc_only(
            Routes::default(),
            &["keyward.v1.KeyService", "grpc.health.v1.Health"],
        );
        assert!(handlers.serves_grpc("/keyward.v1.KeyService/Verify"));
        assert!(handlers.serves_grpc("/grpc.health.v1.Health/Check"));
        for path in [
            "/",
            "",
            "/keyward.v1.KeyServicex/Verify",
            "/authz/nginx",
            "/keyward.v1",
        ] {
            assert!(!handlers.serves_grpc(path), "{path}");
        }
    }

    #[test]
    fn http_refusals_are_never_a_success() {
        for refusal in [
            Refusal::Overloaded,
            Refusal::RequestTimeout,
            Refusal::Panicked,
        ] {
            let response = refusal_response(Kind::Http, refusal);
            assert!(!response.status().is_success());
            assert!(response.headers().get("grpc-status").is_none());
        }
    }
}
