//! The one form of a request path that route rules are matched against.
//!
//! A proxy, keyward and the upstream must agree on which resource a path
//! names, or a rule guarding `/admin/**` can be walked around with a
//! spelling the upstream reads as `/admin` and keyward does not. So
//! [`canonical`] either rewrites a path to the single spelling every
//! RFC 3986 reader agrees on, or refuses it; it never guesses:
//!
//! - the query and fragment are split off (they are not part of the path);
//! - the path must be origin-form (`/…`): absolute-form (`http://h/…`),
//!   `*` and the empty path are refused;
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded, since every reader treats `%61` as `a`; other encoded bytes
//!   keep their encoding with upper-case hex;
//! - an encoded reserved character (`%2F`, `%3B`, `%3F`, `%40`, …), an
//!   encoded `%` (`%25`, double encoding), `%5C` and any encoded control
//!   byte are refused: upstreams differ on whether they split segments,
//!   and every reserved character that is legal in a path can be sent raw;
//! - `;` is refused: Tomcat and Spring strip `;params` from each segment,
//!   Envoy and most others keep them, so `/admin;x` names `/admin` for some
//!   upstreams and something else for keyward;
//! - `\` is refused (some servers read it as `/`), as are raw controls,
//!   spaces and bytes outside ASCII, which no valid request target holds;
//! - encoded bytes above 0x7F must be UTF-8 (no overlong `/`);
//! - empty segments (`//`) and `.`/`..` segments, also after decoding
//!   (`%2e%2e`), are refused: resolving them is the proxy's job
//!   (`normalize_path`, `merge_slashes`), and a path that still has them
//!   was not normalised the way the rules assume. A trailing `/` is kept.
//!
//! Letter case is left alone here; the route rules fold it when configured
//! to (see `routes`). The result is idempotent: the canonical form of a
//! canonical path is itself.

use std::fmt;

/// A path in canonical form, without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalPath(String);

impl CanonicalPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// ASCII letters lower-cased, for case-insensitive matching. Only
    /// letters change: `%XX` escapes keep their meaning.
    pub fn into_lowercase(mut self) -> Self {
        self.0.make_ascii_lowercase();
        self
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a path has no canonical form. The names go to logs and spans (the
/// client only sees 400), so they say which class of trick it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("not an origin-form path starting with `/`")]
    NotAbsolute,
    #[error("an empty segment (repeated `/`)")]
    EmptySegment,
    #[error("a `.` or `..` segment")]
    DotSegment,
    #[error("a `;` path parameter")]
    PathParameter,
    #[error("a backslash")]
    Backslash,
    #[error("a percent-encoded delimiter, `%` or `\\`")]
    EncodedDelimiter,
    #[error("a percent-encoded control byte")]
    EncodedControl,
    #[error("an invalid percent-encoding")]
    BadEscape,
    #[error("encoded bytes that are not UTF-8")]
    NotUtf8,
    #[error("a byte no request target may hold")]
    BadByte,
}

impl PathError {
    /// Stable snake-case name for logs and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "not_absolute",
            PathError::EmptySegment => "empty_segment",
            PathError::DotSegment => "dot_segment",
            PathError::PathParameter => "path_parameter",
            PathError::Backslash => "backslash",
            PathError::EncodedDelimiter => "encoded_delimiter",
            PathError::EncodedControl => "encoded_control",
            PathError::BadEscape => "bad_escape",
            PathError::NotUtf8 => "not_utf8",
            PathError::BadByte => "bad_byte",
        }
    }
}

/// The path of a request target (`/a/b?q#f`) in canonical form, or why it
/// has none. See the module docs for the rules.
pub fn canonical(raw: &str) -> Result<CanonicalPath, PathError> {
    let path = without_query(raw);
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut high_escapes = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let value = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| Some(hex(h[0])? << 4 | hex(h[1])?))
                    .ok_or(PathError::BadEscape)?;
                if is_unreserved(value) {
                    out.push(char::from(value));
                } else if value < 0x20 || value == 0x7f {
                    return Err(PathError::EncodedControl);
                } else if is_reserved(value) || matches!(value, b'%' | b'\\') {
                    return Err(PathError::EncodedDelimiter);
                } else {
                    high_escapes |= value >= 0x80;
                    push_escape(&mut out, value);
                }
                i += 3;
                continue;
            }
            b';' => return Err(PathError::PathParameter),
            b'\\' => return Err(PathError::Backslash),
            _ if is_unreserved(b) || is_path_delimiter(b) => out.push(char::from(b)),
            _ => return Err(PathError::BadByte),
        }
        i += 1;
    }
    if high_escapes && std::str::from_utf8(&decode_all(&out)).is_err() {
        return Err(PathError::NotUtf8);
    }
    let mut segments = out[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        // A trailing slash leaves one empty last segment, which is fine.
        if segment.is_empty() && !last {
            return Err(PathError::EmptySegment);
        }
    }
    Ok(CanonicalPath(out))
}

/// The request target without its query string or fragment.
pub fn without_query(target: &str) -> &str {
    target.find(['?', '#']).map_or(target, |i| &target[..i])
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|d| d as u8)
}

fn push_escape(out: &mut String, value: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(value >> 4)]));
    out.push(char::from(HEX[usize::from(value & 0xf)]));
}

/// Every `%XX` of an already canonical path decoded (escapes there are
/// well-formed).
fn decode_all(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(hex(bytes[i + 1]).unwrap_or(0) << 4 | hex(bytes[i + 2]).unwrap_or(0));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// RFC 3986 unreserved.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 gen-delims and sub-delims.
fn is_reserved(b: u8) -> bool {
    matches!(
        b,
        b':' | b'/'
            | b'?'
            | b'#'
            | b'['
            | b']'
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    )
}

/// Reserved characters legal raw in a path (`pchar` and `/`), less `;`.
fn is_path_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'/' | b':' | b'@' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        match canonical(raw) {
            Ok(p) => p.0,
            Err(e) => panic!("{raw:?}: {e}"),
        }
    }

    fn err(raw: &str) -> PathError {
        match canonical(raw) {
            Ok(p) => panic!("{raw:?} was accepted as {p}"),
            Err(e) => e,
        }
    }

    #[test]
    fn canonical_paths_stay_as_they_are() {
        for p in [
            "/",
            "/orders",
            "/orders/",
            "/orders/1/items",
            "/a-b_c.d~e/f:g@h!$&'()*+,=",
            "/files/...",
            "/a%20b",
            "/caf%C3%A9",
            "/.well-known/x",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn query_and_fragment_are_split_off() {
        assert_eq!(ok("/orders/1?next=/../admin;x"), "/orders/1");
        assert_eq!(ok("/orders#/../admin"), "/orders");
        assert_eq!(ok("/?"), "/");
    }

    #[test]
    fn encoded_unreserved_characters_are_decoded() {
        assert_eq!(ok("/%61dmin/%7Ex"), "/admin/~x");
        assert_eq!(ok("/%41DMIN"), "/ADMIN");
        assert_eq!(ok("/a%2db%5f%2E"), "/a-b_.");
        // Other escapes keep their meaning, with one spelling of hex.
        assert_eq!(ok("/a%c3%a9%20"), "/a%C3%A9%20");
    }

    #[test]
    fn every_bypass_class_is_refused() {
        let cases = [
            ("", PathError::NotAbsolute),
            ("admin", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("http://h/admin", PathError::NotAbsolute),
            ("//admin", PathError::EmptySegment),
            ("/public//admin", PathError::EmptySegment),
            ("/public/./admin", PathError::DotSegment),
            ("/public/../admin", PathError::DotSegment),
            ("/public/%2e%2E/admin", PathError::DotSegment),
            ("/public/.%2e", PathError::DotSegment),
            ("/admin/.", PathError::DotSegment),
            ("/admin;x/y", PathError::PathParameter),
            ("/admin/;", PathError::PathParameter),
            ("/public\\..\\admin", PathError::Backslash),
            ("/public%2F..%2Fadmin", PathError::EncodedDelimiter),
            ("/admin%2fx", PathError::EncodedDelimiter),
            ("/admin%5Cx", PathError::EncodedDelimiter),
            ("/admin%3Bx", PathError::EncodedDelimiter),
            ("/admin%252Fx", PathError::EncodedDelimiter),
            ("/admin%3Fx", PathError::EncodedDelimiter),
            ("/admin%40x", PathError::EncodedDelimiter),
            ("/admin%00", PathError::EncodedControl),
            ("/admin%0a", PathError::EncodedControl),
            ("/admin%7F", PathError::EncodedControl),
            ("/admin%", PathError::BadEscape),
            ("/admin%2", PathError::BadEscape),
            ("/admin%zz", PathError::BadEscape),
            ("/admin%+1", PathError::BadEscape),
            ("/%C0%AF", PathError::NotUtf8),
            ("/%E9", PathError::NotUtf8),
            ("/admin x", PathError::BadByte),
            ("/admin\t", PathError::BadByte),
            ("/admin\0", PathError::BadByte),
            ("/caf\u{e9}", PathError::BadByte),
            ("/a\"b", PathError::BadByte),
            ("/a[b]", PathError::BadByte),
        ];
        for (raw, want) in cases {
            assert_eq!(err(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn canonical_is_idempotent_on_examples() {
        for raw in ["/%61/b%c3%a9/", "/A/%7e", "/x?y"] {
            let once = ok(raw);
            assert_eq!(ok(&once), once);
        }
    }

    #[test]
    fn lowercasing_keeps_escapes_meaningful() {
        let p = canonical("/ADMIN/%C3%A9").unwrap().into_lowercase();
        assert_eq!(p.as_str(), "/admin/%c3%a9");
        assert_eq!(canonical(p.as_str()).unwrap().as_str(), "/admin/%C3%A9");
    }

    #[test]
    fn error_names_are_stable() {
        assert_eq!(PathError::PathParameter.as_str(), "path_parameter");
        assert_eq!(
            PathError::EncodedDelimiter.to_string(),
            "a percent-encoded delimiter, `%` or `\\`"
        );
    }
}
