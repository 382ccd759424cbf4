//! The HTTP routes of the main port, matched on the raw path (before any
//! percent-decoding or dot-segment removal), so the endpoint a request
//! reaches is the one its literal bytes name. Case matters: `/AUTHZ/nginx`
//! is no endpoint.

use std::{future::Future, pin::Pin, sync::Arc};

use http::{Request, Response};
use tonic::body::Body;

use super::{Kind, reply};

pub type HttpRequest = Request<Body>;
pub type HttpResponse = Response<Body>;
pub type BoxResponse = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;

/// One HTTP endpoint (or family of them) on the main port. The request's
/// extensions hold the connection info tonic's handlers read
/// (`TcpConnectInfo`, or `TlsConnectInfo` with TLS).
pub trait Endpoint: Send + Sync + 'static {
    fn call(&self, request: HttpRequest) -> BoxResponse;
}

/// Which raw paths an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// Exactly this path.
    Exact(&'static str),
    /// This path and every path below it (`/ui` takes `/ui` and `/ui/x`,
    /// not `/uix`).
    Subtree(&'static str),
}

impl Mount {
    fn matches(self, path: &str) -> bool {
        match self {
            Mount::Exact(exact) => path == exact,
            Mount::Subtree(prefix) => path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

#[derive(Clone, Default)]
pub struct Router {
    mounts: Arc<Vec<(Mount, Arc<dyn Endpoint>)>>,
    grpc_web: Option<Arc<dyn Endpoint>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `endpoint` at `mount`; the first mount that matches wins.
    pub fn mount(mut self, mount: Mount, endpoint: impl Endpoint) -> Self {
        Arc::make_mut(&mut self.mounts).push((mount, Arc::new(endpoint)));
        self
    }

    /// What serves gRPC-Web requests (by content-type, on any path).
    pub fn grpc_web(mut self, endpoint: impl Endpoint) -> Self {
        self.grpc_web = Some(Arc::new(endpoint));
        self
    }

    /// Answers a request that is not gRPC: its endpoint's answer, or `404`.
    pub fn call(&self, kind: Kind, request: HttpRequest) -> BoxResponse {
        if kind == Kind::GrpcWeb {
            return match &self.grpc_web {
                Some(endpoint) => endpoint.call(request),
                None => Box::pin(std::future::ready(reply::not_found())),
            };
        }
        let path = request.uri().path();
        match self.mounts.iter().find(|(mount, _)| mount.matches(path)) {
            Some((_, endpoint)) => endpoint.call(request),
            None => Box::pin(std::future::ready(reply::not_found())),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    struct Named(&'static str);

    impl Endpoint for Named {
        fn call(&self, _request: HttpRequest) -> BoxResponse {
            let name = self.0;
            Box::pin(async move { reply::text(StatusCode::OK, name) })
        }
    }

    async fn answer(router: &Router, kind: Kind, path: &str) -> (StatusCode, String) {
        use http_body_util::BodyExt;
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = router.call(kind, request).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn mounts_match_raw_paths_exactly() {
        let router = Router::new()
            .mount(Mount::Exact("/authz/nginx"), Named("nginx"))
            .mount(Mount::Subtree("/authz/envoy"), Named("envoy"));
        let ok = |name: &str| (StatusCode::OK, name.to_owned());
        assert_eq!(
            answer(&router, Kind::Http, "/authz/nginx").await,
            ok("nginx")
        );
        assert_eq!(
            answer(&router, Kind::Http, "/authz/envoy").await,
            ok("envoy")
        );
        assert_eq!(
            answer(&router, Kind::Http, "/authz/envoy/a/b").await,
            ok("envoy")
        );
        for path in [
            "/authz/nginxfoo",
            "/AUTHZ/nginx",
            "/authz/nginx/",
            "/authz/envoyx",
            "/authz/%6eginx",
            "/",
            "/keyward.v1.KeyService/Verify",
        ] {
            assert_eq!(
                answer(&router, Kind::Http, path).await.0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn grpc_web_without_an_endpoint_is_not_found() {
        let router = Router::new().mount(Mount::Subtree("/keyward.v1.KeyService"), Named("c"));
        let (status, _) = answer(&router, Kind::GrpcWeb, "/keyward.v1.KeyService/Verify").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let router = router.grpc_web(Named("web"));
        let (status, body) = answer(&router, Kind::GrpcWeb, "/keyward.v1.KeyService/Verify").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "web"));
    }
}
