//! CORS for the browser-facing endpoints (Connect and gRPC-Web), by
//! tower-http's `CorsLayer`: only the origins in `--cors-allowed-origins`
//! get CORS headers. With none configured (the default) no endpoint is
//! wrapped at all: no CORS headers, and a preflight (`OPTIONS`) is refused
//! like any other method. A preflight from an origin not in the list is
//! refused with `403` rather than tower-http's header-less `200`.

use std::{convert::Infallible, sync::Arc, task::Poll, time::Duration};

use futures_util::FutureExt;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::cors::{AllowHeaders, AllowOrigin, Cors, CorsLayer, ExposeHeaders};
use tower_layer::Layer;
use tower_service::Service;

use super::{BoxResponse, Endpoint, HttpRequest, HttpResponse, reply};

/// The flag of `keyward serve`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CorsArgs {
    /// Origins (`https://console.example.com`, comma-separated) whose
    /// browser pages may call the KeyService over Connect and gRPC-Web; `*`
    /// allows any origin. Empty (the default): no CORS headers, preflights
    /// refused.
    #[arg(
        long,
        env = "KEYWARD_CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_parser = origin
    )]
    pub cors_allowed_origins: Vec<String>,
}

/// An origin as browsers send it: scheme, host and optional port, no
/// path; or `*`.
fn origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(value.to_owned());
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("an origin starts with https:// or http://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', ',']) {
        return Err("an origin is scheme://host[:port], with no path".to_owned());
    }
    HeaderValue::from_str(value).map_err(|e| e.to_string())?;
    Ok(value.to_owned())
}

/// Request headers a Connect or gRPC-Web client sends (connectrpc's list,
/// plus keyward's `authorization` and `traceparent`).
const ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
    "authorization",
    "traceparent",
];

/// Response headers a browser client must be able to read.
const EXPOSED_HEADERS: &[&str] = &["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// How long a browser may cache a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(2 * 60 * 60);

/// `endpoint` as is when no origin is allowed, else behind CORS.
pub fn wrap(endpoint: impl Endpoint, origins: &[String]) -> WithCors {
    let inner = Inner(Arc::new(endpoint));
    if origins.is_empty() {
        return WithCors { inner, cors: None };
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let any = origins.iter().any(|o| o == "*");
    let layer = CorsLayer::new()
        .allow_origin(if any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(allowed.clone())
        })
        .allow_methods([Method::POST])
        .allow_headers(AllowHeaders::list(
            ALLOWED_HEADERS.iter().map(|h| HeaderName::from_static(h)),
        ))
        .expose_headers(ExposeHeaders::list(
            EXPOSED_HEADERS.iter().map(|h| HeaderName::from_static(h)),
        ))
        .max_age(MAX_AGE);
    WithCors {
        cors: Some((layer.layer(inner.clone()), (!any).then_some(allowed))),
        inner,
    }
}

pub struct WithCors {
    inner: Inner,
    /// The wrapped endpoint, and the allowed origins (`None`: any).
    cors: Option<(Cors<Inner>, Option<Vec<HeaderValue>>)>,
}

impl Endpoint for WithCors {
    fn call(&self, request: HttpRequest) -> BoxResponse {
        let Some((cors, allowed)) = &self.cors else {
            return self.inner.0.call(request);
        };
        if request.method() == Method::OPTIONS
            && let Some(allowed) = allowed
            && !request
                .headers()
                .get(header::ORIGIN)
                .is_some_and(|origin| allowed.contains(origin))
        {
            return Box::pin(std::future::ready(reply::empty(StatusCode::FORBIDDEN)));
        }
        let mut cors = cors.clone();
        Box::pin(cors.call(request).map(|answer| match answer {
            Ok(response) => response,
            Err(never) => match never {},
        }))
    }
}

/// An endpoint as the tower service `Cors` wraps.
#[derive(Clone)]
struct Inner(Arc<dyn Endpoint>);

impl Service<HttpRequest> for Inner {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = futures_util::future::Map<
        BoxResponse,
        fn(HttpResponse) -> Result<HttpResponse, Infallible>,
    >;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        self.0.call(request).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use tonic::body::Body;

    use super::*;

    struct Hello;

    impl Endpoint for Hello {
        fn call(&self, request: HttpRequest) -> BoxResponse {
            let status = if request.method() == Method::POST {
                StatusCode::OK
            } else {
                StatusCode::METHOD_NOT_ALLOWED
            };
            Box::pin(std::future::ready(reply::empty(status)))
        }
    }

    fn request(method: Method, origin: Option<&str>) -> HttpRequest {
        let mut builder = http::Request::builder()
            .method(method)
            .uri("/keyward.v1.KeyService/Verify")
            .header("access-control-request-method", "POST");
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::empty()).unwrap()
    }

    const ACAO: header::HeaderName = header::ACCESS_CONTROL_ALLOW_ORIGIN;

    #[tokio::test]
    async fn nothing_allowed_by_default() {
        let endpoint = wrap(Hello, &[]);
        let preflight = endpoint
            .call(request(Method::OPTIONS, Some("https://a.example")))
            .await;
        assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);
        let post = endpoint
            .call(request(Method::POST, Some("https://a.example")))
            .await;
        assert!(post.headers().get(ACAO).is_none());
    }

    #[tokio::test]
    async fn listed_origins_only() {
        let endpoint = wrap(Hello, &["https://a.example".to_owned()]);
        let preflight = endpoint
            .call(request(Method::OPTIONS, Some("https://a.example")))
            .await;
        assert!(preflight.status().is_success());
        assert_eq!(preflight.headers()[ACAO], "https://a.example");
        let allow = preflight.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap();
        assert!(allow.contains("authorization") && allow.contains("connect-protocol-version"));
        let post = endpoint
            .call(request(Method::POST, Some("https://a.example")))
            .await;
        assert_eq!(post.headers()[ACAO], "https://a.example");

        let other = endpoint
            .call(request(Method::OPTIONS, Some("https://b.example")))
            .await;
        assert_eq!(other.status(), StatusCode::FORBIDDEN);
        assert!(other.headers().get(ACAO).is_none());
        let post = endpoint
            .call(request(Method::POST, Some("https://b.example")))
            .await;
        assert!(post.headers().get(ACAO).is_none());
    }

    #[test]
    fn origins_are_checked() {
        assert!(origin("https://a.example:8443").is_ok());
        assert!(origin("*").is_ok());
        for bad in ["a.example", "https://a.example/", "https://", "ftp://a"] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }
}
