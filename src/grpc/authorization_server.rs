//! `envoy.service.auth.v3.Authorization` as tonic-build would generate its
//! server, over keyward's trimmed Check messages instead of envoy-types'
//! full ones (see `check_request` and `check_codec`): same service name,
//! same method path, same answer to an unknown method.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{
    body::Body,
    codegen::{BoxFuture, StdError, http},
    server::{Grpc, NamedService, UnaryService},
};

use super::{
    check_codec::CheckCodec, check_request::CheckRequest, check_response::CheckResponse,
    ext_authz::ExtAuthzService,
};

pub const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

#[derive(Clone)]
pub struct AuthorizationServer {
    inner: Arc<ExtAuthzService>,
    max_decoding_message_size: Option<usize>,
}

impl AuthorizationServer {
    pub fn new(inner: ExtAuthzService) -> Self {
        Self {
            inner: Arc::new(inner),
            max_decoding_message_size: None,
        }
    }

    /// Limits the size of a decoded request (tonic's default: 4 MiB).
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

impl NamedService for AuthorizationServer {
    const NAME: &'static str = SERVICE_NAME;
}

struct Check(Arc<ExtAuthzService>);

impl UnaryService<CheckRequest> for Check {
    type Response = CheckResponse;
    type Future = BoxFuture<tonic::Response<CheckResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.check(request).await })
    }
}

impl<B> tower_service::Service<http::Request<B>> for AuthorizationServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CHECK_PATH {
            return Box::pin(async move { Ok(unimplemented()) });
        }
        let method = Check(self.inner.clone());
        let max_decoding = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = Grpc::new(CheckCodec).apply_max_message_size_config(max_decoding, None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// What a generated server answers for a method it does not have.
fn unimplemented() -> http::Response<Body> {
    let mut response = http::Response::new(Body::default());
    let headers = response.headers_mut();
    headers.insert(
        tonic::Status::GRPC_STATUS,
        (tonic::Code::Unimplemented as i32).into(),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}
