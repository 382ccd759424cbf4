//! The Connect request headers keyward honours: `Connect-Protocol-Version`
//! (when present it must be `1`) and `Connect-Timeout-Ms` (the call's
//! deadline), and `Content-Encoding` (only `identity`: keyward's messages are
//! small enough that compression costs more than it saves).

use std::time::Duration;

use http::HeaderMap;
use tonic::Code;

use super::error::ConnectError;

const PROTOCOL_VERSION: &str = "connect-protocol-version";
const TIMEOUT_MS: &str = "connect-timeout-ms";

/// Checks the headers; returns the deadline the caller asked for, if any.
pub fn check(headers: &HeaderMap) -> Result<Option<Duration>, ConnectError> {
    if let Some(version) = headers.get(PROTOCOL_VERSION)
        && version.as_bytes() != b"1"
    {
        return Err(ConnectError::new(
            Code::InvalidArgument,
            "connect-protocol-version must be 1",
        ));
    }
    if let Some(encoding) = headers.get(http::header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return Err(ConnectError::new(
            Code::Unimplemented,
            "content-encoding: only identity is supported",
        ));
    }
    let Some(timeout) = headers.get(TIMEOUT_MS) else {
        return Ok(None);
    };
    // At most 10 digits, as the protocol says: no overflow, no sign.
    let valid = timeout.len() <= 10 && timeout.as_bytes().iter().all(u8::is_ascii_digit);
    match std::str::from_utf8(timeout.as_bytes())
        .ok()
        .filter(|_| valid)
        .and_then(|t| t.parse::<u64>().ok())
    {
        Some(ms) => Ok(Some(Duration::from_millis(ms))),
        None => Err(ConnectError::new(
            Code::InvalidArgument,
            "connect-timeout-ms must be a positive integer of at most 10 digits",
        )),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn code(pairs: &[(&'static str, &'static str)]) -> Option<Code> {
        check(&headers(pairs)).err().map(|e| e.0.code())
    }

    #[test]
    fn version_and_timeout() {
        assert_eq!(check(&headers(&[])).unwrap(), None);
        assert_eq!(
            check(&headers(&[(PROTOCOL_VERSION, "1"), (TIMEOUT_MS, "250")])).unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            code(&[(PROTOCOL_VERSION, "2")]),
            Some(Code::InvalidArgument)
        );
        for bad in ["-1", "1.5", "", "12345678901", "x"] {
            assert_eq!(
                code(&[(TIMEOUT_MS, bad)]),
                Some(Code::InvalidArgument),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_identity_encoding() {
        assert_eq!(code(&[("content-encoding", "identity")]), None);
        assert_eq!(
            code(&[("content-encoding", "gzip")]),
            Some(Code::Unimplemented)
        );
    }
}
