//! Reading an HTTP request body whole, within a limit: a client cannot
//! make keyward buffer more than `limit` bytes for one request, and a body
//! that stalls ends with the transport's request timeout.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use tonic::body::Body;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body broke off or did not arrive within the request timeout.
    #[error("the request body could not be read")]
    Unreadable,
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Unreadable => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// The whole body, or an error once more than `limit` bytes arrived.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge(limit))
        }
        Err(_) => Err(BodyError::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn within_and_past_the_limit() {
        let body = |n: usize| Body::new(http_body_util::Full::new(Bytes::from(vec![b'x'; n])));
        assert_eq!(read(body(10), 10).await.unwrap().len(), 10);
        assert!(matches!(
            read(body(11), 10).await,
            Err(BodyError::TooLarge(10))
        ));
    }
}
