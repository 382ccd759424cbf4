//! Why a leak report was not taken, and the line its sender reads: fixed
//! text, never what keyward knows about a token.

use super::keys::SignatureError;
use crate::{admin::MAX_LEAKED_TOKENS, http::body::BodyError};

#[derive(Debug, thiserror::Error)]
pub enum LeakRefusal {
    #[error("leak reports are POSTed")]
    MethodNotAllowed,
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Any signature failure: refused before the body is parsed, so an
    /// unsigned report changes nothing.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed, but not a JSON array of `{token, type, url, source}`.
    #[error("the report is not a JSON array of {{token, type, url, source}}")]
    NotReport,
    /// More tokens than one report may hold: refused whole, and a retry of
    /// the same report would be refused again, so it is not `Failed`.
    #[error("the report holds more than {MAX_LEAKED_TOKENS} tokens")]
    TooManyTokens,
    /// The admin operation failed (a store that cannot be reached, too
    /// many tokens): the sender retries.
    #[error("the report could not be processed ({0:?})")]
    Failed(tonic::Code),
}

impl LeakRefusal {
    /// The fixed line the sender reads; the status is
    /// `http::status::for_leak_refusal`'s.
    pub fn message(&self) -> &'static str {
        match self {
            LeakRefusal::MethodNotAllowed => "POST a signed leak report\n",
            LeakRefusal::Body(BodyError::TooLarge(_)) => "the report is too large\n",
            LeakRefusal::Body(BodyError::Unreadable) => "the report could not be read\n",
            LeakRefusal::Signature(_) => "the report's signature is missing or not trusted\n",
            LeakRefusal::NotReport => "the report is not a JSON array of tokens\n",
            LeakRefusal::TooManyTokens => "the report holds too many tokens; split it\n",
            LeakRefusal::Failed(_) => "the report could not be processed; retry\n",
        }
    }
}
