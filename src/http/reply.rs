//! Small HTTP answers with a plain-text body, for refusals that have no
//! richer shape (an endpoint with its own error format, like Connect's
//! JSON errors, builds its own).

use http::{HeaderValue, Response, StatusCode, header};
use tonic::body::Body;

/// Spelled out rather than imported from the router, which uses these
/// answers: the two modules must not import each other.
type HttpResponse = Response<Body>;

/// `status` with `message` as a plain-text body.
pub fn text(status: StatusCode, message: &'static str) -> HttpResponse {
    let mut response = full(status, message);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `status` with `body` as an `application/json` body.
pub fn json(status: StatusCode, body: impl Into<bytes::Bytes>) -> HttpResponse {
    let mut response = full(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `status` with `body` and no headers: the caller names its type.
pub fn full(status: StatusCode, body: impl Into<bytes::Bytes>) -> HttpResponse {
    let mut response = Response::new(Body::new(http_body_util::Full::new(body.into())));
    *response.status_mut() = status;
    response
}

pub fn not_found() -> HttpResponse {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// `status` with no body at all.
pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
