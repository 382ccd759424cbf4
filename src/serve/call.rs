//! The path of one call through the transport, in order: classify it
//! (gRPC, gRPC-Web or HTTP), mark the connection busy, shed it if the
//! server is at `--max-in-flight`, bound the arrival of its body by
//! `--request-timeout`, give the handler the connection's address and
//! certificates, send it to tonic or to the HTTP router, and turn a panic
//! into INTERNAL (or `500`). Every refusal is in the caller's protocol and
//! never a 2xx for HTTP.
//!
//! On the hot path this adds two atomic increments and decrements (the
//! connection's call count and the global permit), one clock read, a
//! content-type comparison, the boxed future hyper needs, and a timer only
//! when the body is not ready at once.

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc, task::Poll, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::{sync::Semaphore, time::Instant};
use tonic::body::Body;
use tower_service::Service;

use super::{
    Refusal,
    activity::Activity,
    deadline::DeadlineBody,
    handlers::{Handlers, refusal_response},
    panic::catch_panic,
};
use crate::http::{Kind, reply};

type CallFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The calls of one connection; `I` is what tonic's `Request::remote_addr`
/// and `peer_certs` read from the request's extensions.
#[derive(Clone)]
pub struct Calls<I> {
    pub handlers: Handlers,
    pub connect_info: I,
    pub in_flight: Arc<Semaphore>,
    pub activity: Arc<Activity>,
    pub request_timeout: Duration,
}

impl<I> hyper::service::Service<Request<Incoming>> for Calls<I>
where
    I: Clone + Send + Sync + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = CallFuture;

    fn call(&self, request: Request<Incoming>) -> CallFuture {
        let kind = Kind::of(request.uri().path(), request.headers());
        if kind.is_grpc() && !self.handlers.serves_grpc(request.uri().path()) {
            return Box::pin(std::future::ready(Ok(reply::not_found())));
        }
        let busy = self.activity.begin();
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("keyward_calls_shed_total").increment(1);
            return Box::pin(std::future::ready(Ok(refusal_response(
                kind,
                Refusal::Overloaded,
            ))));
        };
        let deadline = Instant::now() + self.request_timeout;
        let mut request = request.map(|body| Body::new(DeadlineBody::new(body, deadline)));
        request.extensions_mut().insert(self.connect_info.clone());
        if kind != Kind::Grpc {
            let router = self.handlers.http.clone();
            return Box::pin(async move {
                let (_busy, _permit) = (busy, permit);
                let path = request.uri().clone();
                let response = catch_panic(path.path(), kind, || {
                    let answer = router.call(kind, request);
                    async move { Ok(answer.await) }
                })
                .await;
                Ok(response)
            });
        }
        let mut routes = self.handlers.grpc.clone();
        Box::pin(async move {
            let (_busy, _permit) = (busy, permit);
            let path = request.uri().clone();
            let response = catch_panic(path.path(), kind, || async move {
                std::future::poll_fn(|cx| {
                    match Service::<Request<Body>>::poll_ready(&mut routes, cx) {
                        Poll::Ready(Ok(())) => Poll::Ready(()),
                        Poll::Ready(Err(never)) => match never {},
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await;
                routes.call(request).await
            })
            .await;
            Ok(response)
        })
    }
}
