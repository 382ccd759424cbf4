//! The one place a gRPC code, or a refusal by the transport, becomes an
//! HTTP status. The mapping is the Connect protocol's
//! (<https://connectrpc.com/docs/protocol#error-codes>), which is also what
//! gRPC clients read back from an HTTP status.

use http::StatusCode;
use tonic::Code;

use crate::{
    http::{console::ConsoleError, leaks::refusal::LeakRefusal},
    serve::Refusal,
};

pub fn for_code(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_FOUND,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

/// A refusal by the transport, for a request that is not gRPC. Overload is
/// `503` rather than `429`: it is the server's state, not the caller's
/// quota, and a gateway must not read it as an answer about the key.
pub fn for_refusal(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        Refusal::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A leak report that was not taken. Every signature failure is the same
/// `401`, so a sender learns nothing about which keys are trusted.
pub fn for_leak_refusal(refusal: &LeakRefusal) -> StatusCode {
    match refusal {
        LeakRefusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        LeakRefusal::Body(error) => error.status(),
        LeakRefusal::Signature(_) => StatusCode::UNAUTHORIZED,
        LeakRefusal::NotReport | LeakRefusal::TooManyTokens => StatusCode::BAD_REQUEST,
        LeakRefusal::Failed(code) => for_code(*code),
    }
}

/// A console page that failed: the KeyService's code as everywhere else;
/// a missing CSRF token is `403`, as a refusal to act.
pub fn for_console(error: &ConsoleError) -> StatusCode {
    match error {
        ConsoleError::Rpc { code, .. } => for_code(*code),
        ConsoleError::Form { .. } => StatusCode::BAD_REQUEST,
        ConsoleError::Csrf => StatusCode::FORBIDDEN,
        ConsoleError::Body => StatusCode::PAYLOAD_TOO_LARGE,
        ConsoleError::TooManySessions => StatusCode::SERVICE_UNAVAILABLE,
        ConsoleError::NotFound => StatusCode::NOT_FOUND,
        ConsoleError::Method => StatusCode::METHOD_NOT_ALLOWED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_refusal_and_no_error_code_is_a_success() {
        for refusal in [
            Refusal::Overloaded,
            Refusal::RequestTimeout,
            Refusal::Panicked,
        ] {
            assert!(!for_refusal(refusal).is_success());
        }
        for code in 1..=16 {
            assert!(!for_code(Code::from_i32(code)).is_success(), "{code}");
        }
    }
}
