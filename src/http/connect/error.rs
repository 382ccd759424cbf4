//! Connect's error shape: a JSON body `{"code": "...", "message": "..."}`
//! with the code's name, and the HTTP status `http::status::for_code` gives
//! it, whatever the request's codec
//! (<https://connectrpc.com/docs/protocol#error-end-stream>).

use http::{HeaderValue, Response, header};
use tonic::{Code, Status, body::Body};

use crate::http::{reply, status};

/// A Connect error: a gRPC code, a message for the caller, and the
/// status's metadata, sent back as headers.
#[derive(Debug)]
pub struct ConnectError(pub Status);

impl ConnectError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self(Status::new(code, message))
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.0;
        let mut body = serde_json::json!({ "code": code_name(status.code()) });
        if !status.message().is_empty() {
            body["message"] = status.message().into();
        }
        let mut response = reply::json(status::for_code(status.code()), body.to_string());
        let headers = response.headers_mut();
        for (name, value) in status.metadata().clone().into_headers().iter() {
            if !name.as_str().starts_with("grpc-") {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<Status> for ConnectError {
    fn from(status: Status) -> Self {
        Self(status)
    }
}

/// The code's name in the Connect protocol (note `canceled`, one `l`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        // A success carries no error; only reached by a bug, named so it
        // stays visible.
        Code::Ok => "unknown",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn the_json_body_and_status_of_an_error() {
        let response = ConnectError::new(Code::Unauthenticated, "no admin key").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "unauthenticated", "message": "no admin key"})
        );
    }

    #[test]
    fn every_error_code_has_a_distinct_name() {
        let names: std::collections::HashSet<_> =
            (1..=16).map(|c| code_name(Code::from_i32(c))).collect();
        assert_eq!(names.len(), 16);
    }
}
