//! gRPC-Web (binary and text) for the KeyService, by tonic-web wrapping the
//! same generated server as gRPC: a browser can call it. Only the
//! KeyService is served this way; any other path is `404`, so nothing but a
//! decision ever answers 2xx.

use std::convert::Infallible;

use tonic::server::NamedService;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower_layer::Layer;
use tower_service::Service;

use super::{BoxResponse, Endpoint, HttpRequest, HttpResponse, reply};

pub struct GrpcWeb<S> {
    service: GrpcWebService<S>,
    prefix: String,
}

impl<S> GrpcWeb<S>
where
    S: NamedService,
{
    pub fn new(server: S) -> Self {
        Self {
            service: GrpcWebLayer::new().layer(server),
            prefix: format!("/{}/", S::NAME),
        }
    }
}

impl<S> Endpoint for GrpcWeb<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, request: HttpRequest) -> BoxResponse {
        if !request.uri().path().starts_with(&self.prefix) {
            return Box::pin(std::future::ready(reply::not_found()));
        }
        let mut service = self.service.clone();
        Box::pin(async move {
            match service.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    }
}
