//! The error every keyward operation returns. `grpc::status` maps it to a
//! gRPC status; nothing else does.

use crate::{cache::LookupError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is wrong; the message starts with the field's name.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The key's state forbids the change.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency is down; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a broken invariant; details are logged, not returned.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => Error::NotFound(format!("no key with id {id}")),
            e @ StoreError::LabelTaken { .. } => Error::AlreadyExists(e.to_string()),
            StoreError::Conflict(message) => Error::FailedPrecondition(message),
            e @ StoreError::Unavailable(_) => Error::Unavailable(e.to_string()),
            StoreError::Other(message) => Error::Internal(message),
        }
    }
}

impl From<LookupError> for Error {
    fn from(error: LookupError) -> Self {
        Error::Unavailable(error.to_string())
    }
}
