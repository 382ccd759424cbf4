//! Why a console request failed; `http::status::for_console` turns it into
//! an HTTP status, `respond::failure` into a page that says it in words.

use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The KeyService refused; its message is the gRPC reason.
    #[error("{}: {}", describe(*.code), .message)]
    Rpc { code: Code, message: String },
    /// A form field that cannot be read; names the field.
    #[error("{field}: {message}")]
    Form {
        field: &'static str,
        message: String,
    },
    /// A POST without the session's CSRF token.
    #[error("this form is stale or was not sent by the console; reload the page and try again")]
    Csrf,
    /// A POST body past the console's limit, or unreadable.
    #[error("the form is too large or could not be read")]
    Body,
    /// Too many live sessions to start another.
    #[error("too many console sessions are open; try again later")]
    TooManySessions,
    #[error("no such page")]
    NotFound,
    #[error("this page takes GET or POST only")]
    Method,
}

impl ConsoleError {
    pub fn form(field: &'static str, message: impl Into<String>) -> Self {
        Self::Form {
            field,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for ConsoleError {
    fn from(status: tonic::Status) -> Self {
        Self::Rpc {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// The gRPC code in words a person reads.
fn describe(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument | Code::OutOfRange => "Invalid input",
        Code::NotFound => "Not found",
        Code::AlreadyExists => "Already exists",
        Code::FailedPrecondition => "Not possible in the key's state",
        Code::PermissionDenied => "Not allowed for this admin key",
        Code::Unauthenticated => "Not signed in",
        Code::ResourceExhausted => "Over a limit",
        Code::Unavailable => "Keyward cannot reach its store right now",
        Code::DeadlineExceeded => "Took too long",
        _ => "Keyward failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_as_words_with_the_reason() {
        let error = ConsoleError::from(tonic::Status::permission_denied(
            "this admin key reaches project shop only",
        ));
        assert_eq!(
            error.to_string(),
            "Not allowed for this admin key: this admin key reaches project shop only"
        );
    }
}
