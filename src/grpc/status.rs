//! The one place an [`Error`] becomes a gRPC status.

use tonic::Status;

use crate::{error::Error, serve::Refusal};

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            e @ Error::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
            Error::NotFound(m) => Status::not_found(m),
            Error::AlreadyExists(m) => Status::already_exists(m),
            Error::FailedPrecondition(m) => Status::failed_precondition(m),
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::ResourceExhausted(m) => Status::resource_exhausted(m),
            Error::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                Status::unavailable(m)
            }
            Error::Internal(m) => {
                // The detail may describe internals; the caller gets none.
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::Overloaded => Status::resource_exhausted(message),
            Refusal::RequestTimeout => Status::deadline_exceeded(message),
            Refusal::Panicked => Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_error_has_its_code() {
        let cases = [
            (
                Error::invalid("project", "must not be empty"),
                Code::InvalidArgument,
            ),
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::AlreadyExists("x".into()), Code::AlreadyExists),
            (
                Error::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (Error::Unauthenticated("x".into()), Code::Unauthenticated),
            (Error::PermissionDenied("x".into()), Code::PermissionDenied),
            (
                Error::ResourceExhausted("x".into()),
                Code::ResourceExhausted,
            ),
            (Error::Unavailable("x".into()), Code::Unavailable),
            (Error::Internal("secret detail".into()), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
        for (refusal, code) in [
            (Refusal::Overloaded, Code::ResourceExhausted),
            (Refusal::RequestTimeout, Code::DeadlineExceeded),
            (Refusal::Panicked, Code::Internal),
        ] {
            assert_eq!(Status::from(refusal).code(), code);
        }
    }

    #[test]
    fn invalid_argument_names_the_field_and_internal_hides_details() {
        assert_eq!(
            Status::from(Error::invalid("label", "must not be empty")).message(),
            "label: must not be empty"
        );
        assert_eq!(
            Status::from(Error::Internal("secret detail".into())).message(),
            "internal error"
        );
    }
}
