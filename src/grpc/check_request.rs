//! The parts of Envoy's `envoy.service.auth.v3.CheckRequest` that a decision
//! reads: the peer's address, the method, the path, the headers (the
//! `headers` map or the raw `header_map`) and the route's context
//! extensions.
//!
//! The received buffer is walked in place (`check_wire`) with the tags and
//! types of third_party/envoy-proto, and each string is kept as an offset
//! pair into it: a header costs 16 bytes of one vector, not a prost message,
//! two `Bytes` and their reference counts. Everything else Envoy sends
//! (destination, time, id, host, scheme, protocol, metadata contexts, body,
//! TLS session) is skipped unread. A `map<string, string>` is, on the wire,
//! a repeated key/value entry: no hashing, repeated messages merge and the
//! last value of a field wins, as prost decodes it. The strings a decision
//! reads are checked to be UTF-8 here, as decoding them as `string` would.

use std::{fmt, net::IpAddr, str};

use bytes::Bytes;

use super::check_wire::{WireError, fields};
use crate::authz::Fields;

/// A range of the request's buffer.
#[derive(Clone, Copy, Default)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Clone, Copy, Default)]
struct Pair {
    key: Span,
    value: Span,
}

/// A decoded Check request: its buffer and where the parts a decision
/// reads lie in it.
pub struct CheckRequest {
    buf: Bytes,
    parts: Parts,
    peer: Option<IpAddr>,
}

/// Where the strings a decision reads lie in the buffer.
struct Parts {
    method: Span,
    path: Span,
    headers: Vec<Pair>,
    raw: Vec<Pair>,
    context: Vec<Pair>,
}

/// What a decision reads of a Check request.
pub struct Attributes<'a> {
    pub method: &'a str,
    /// The request target: path and query string.
    pub path: &'a str,
    pub headers: Headers<'a>,
    pub context: Entries<'a>,
    pub peer: Option<IpAddr>,
}

/// Where the walk puts what it finds.
struct Walk<'b> {
    base: &'b [u8],
    parts: Parts,
    socket_address: Option<Span>,
}

impl Walk<'_> {
    fn span(&self, part: &[u8]) -> Span {
        // `part` is a slice of `base` (the walk only ever narrows it), and
        // `decode` checked that `base` fits in u32 offsets.
        let start = part.as_ptr() as usize - self.base.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn request(&mut self, message: &[u8]) -> Result<(), WireError> {
        for field in fields(message) {
            if let (1, value) = field? {
                self.attributes(value.delimited("CheckRequest.attributes")?)?;
            }
        }
        Ok(())
    }

    fn attributes(&mut self, message: &[u8]) -> Result<(), WireError> {
        for field in fields(message) {
            match field? {
                (1, value) => self.peer(value.delimited("AttributeContext.source")?)?,
                (4, value) => {
                    for field in fields(value.delimited("AttributeContext.request")?) {
                        if let (2, http) = field? {
                            self.http(http.delimited("Request.http")?)?;
                        }
                    }
                }
                (10, value) => {
                    let entry =
                        self.entry(value.delimited("AttributeContext.context_extensions")?, 2)?;
                    self.parts.context.push(entry);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `Peer.address` → `Address.socket_address` → `SocketAddress.address`;
    /// the `Address` oneof's other members carry no IP and are skipped.
    fn peer(&mut self, message: &[u8]) -> Result<(), WireError> {
        for field in fields(message) {
            let (1, address) = field? else { continue };
            for field in fields(address.delimited("Peer.address")?) {
                let (1, socket) = field? else { continue };
                for field in fields(socket.delimited("Address.socket_address")?) {
                    if let (2, ip) = field? {
                        let ip = ip.delimited("SocketAddress.address")?;
                        self.socket_address = Some(self.span(ip));
                    }
                }
            }
        }
        Ok(())
    }

    fn http(&mut self, message: &[u8]) -> Result<(), WireError> {
        for field in fields(message) {
            match field? {
                (2, value) => self.parts.method = self.span(value.delimited("HttpRequest.method")?),
                (3, value) => {
                    let entry = self.entry(value.delimited("HttpRequest.headers")?, 2)?;
                    self.parts.headers.push(entry);
                }
                (4, value) => self.parts.path = self.span(value.delimited("HttpRequest.path")?),
                (13, value) => {
                    for field in fields(value.delimited("HttpRequest.header_map")?) {
                        if let (1, header) = field? {
                            // `HeaderValue`: the key, and the value in
                            // `raw_value` (bytes, not required to be UTF-8).
                            let entry = self.entry(header.delimited("HeaderMap.headers")?, 3)?;
                            self.parts.raw.push(entry);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A key (field 1) and a value (field `value_tag`); either may be absent.
    fn entry(&self, message: &[u8], value_tag: u32) -> Result<Pair, WireError> {
        let mut pair = Pair::default();
        for field in fields(message) {
            match field? {
                (1, key) => pair.key = self.span(key.delimited("entry key")?),
                (tag, value) if tag == value_tag => {
                    pair.value = self.span(value.delimited("entry value")?);
                }
                _ => {}
            }
        }
        Ok(pair)
    }
}

impl CheckRequest {
    pub fn decode(buf: Bytes) -> Result<Self, WireError> {
        if u32::try_from(buf.len()).is_err() {
            return Err(WireError::Truncated);
        }
        let mut walk = Walk {
            base: &buf,
            parts: Parts {
                method: Span::default(),
                path: Span::default(),
                // Envoy sends a dozen headers or so for a plain request.
                headers: Vec::with_capacity(16),
                raw: Vec::new(),
                context: Vec::new(),
            },
            socket_address: None,
        };
        walk.request(&buf)?;
        let Walk {
            parts,
            socket_address,
            ..
        } = walk;
        let text = |span: Span, field| {
            str::from_utf8(slice(&buf, span)).map_err(|_| WireError::NotUtf8(field))
        };
        for pair in &parts.context {
            text(pair.key, "AttributeContext.context_extensions")?;
            text(pair.value, "AttributeContext.context_extensions")?;
        }
        text(parts.method, "HttpRequest.method")?;
        text(parts.path, "HttpRequest.path")?;
        for pair in &parts.headers {
            text(pair.key, "HttpRequest.headers")?;
            text(pair.value, "HttpRequest.headers")?;
        }
        for pair in &parts.raw {
            text(pair.key, "HeaderValue.key")?;
        }
        let peer = match socket_address {
            Some(span) => text(span, "SocketAddress.address")?.parse().ok(),
            None => None,
        };
        Ok(Self { buf, parts, peer })
    }

    pub fn attributes(&self) -> Attributes<'_> {
        Attributes {
            method: utf8(&self.buf, self.parts.method),
            path: utf8(&self.buf, self.parts.path),
            headers: Headers {
                buf: &self.buf,
                map: &self.parts.headers,
                raw: &self.parts.raw,
            },
            context: Entries {
                buf: &self.buf,
                pairs: &self.parts.context,
            },
            peer: self.peer,
        }
    }
}

fn slice(buf: &[u8], span: Span) -> &[u8] {
    &buf[span.start as usize..span.end as usize]
}

/// A string `decode` checked.
fn utf8(buf: &[u8], span: Span) -> &str {
    str::from_utf8(slice(buf, span)).unwrap_or_default()
}

/// Header values hold the key: debug output names the headers only.
impl fmt::Debug for CheckRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[Pair]| -> Vec<&str> {
            pairs.iter().map(|p| utf8(&self.buf, p.key)).collect()
        };
        f.debug_struct("CheckRequest")
            .field("method", &utf8(&self.buf, self.parts.method))
            .field("headers", &names(&self.parts.headers))
            .field("header_map", &names(&self.parts.raw))
            .field("context_extensions", &names(&self.parts.context))
            .finish_non_exhaustive()
    }
}

/// A map's entries. The last entry of a repeated key wins, as it does when
/// a map is decoded.
#[derive(Clone, Copy)]
pub struct Entries<'a> {
    buf: &'a [u8],
    pairs: &'a [Pair],
}

impl<'a> Entries<'a> {
    /// Every entry, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let buf = self.buf;
        self.pairs
            .iter()
            .map(move |p| (utf8(buf, p.key), utf8(buf, p.value)))
    }

    fn last(&self, name: &str) -> Option<&'a str> {
        let pair = self
            .pairs
            .iter()
            .rev()
            .find(|p| slice(self.buf, p.key) == name.as_bytes())?;
        Some(utf8(self.buf, pair.value))
    }
}

impl Fields for Entries<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        self.last(name)
    }
}

/// Headers as Envoy sends them: the `headers` map, or `header_map` when the
/// filter sets `encode_raw_headers` (where a value that is not UTF-8 reads
/// as absent).
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    buf: &'a [u8],
    map: &'a [Pair],
    raw: &'a [Pair],
}

impl<'a> Headers<'a> {
    /// The `headers` map alone.
    pub fn map(&self) -> Entries<'a> {
        Entries {
            buf: self.buf,
            pairs: self.map,
        }
    }
}

impl Fields for Headers<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        if let Some(value) = self.map().last(name) {
            return Some(value);
        }
        let header = self
            .raw
            .iter()
            .find(|p| slice(self.buf, p.key) == name.as_bytes())?;
        str::from_utf8(slice(self.buf, header.value)).ok()
    }
}

#[cfg(test)]
#[path = "check_request_tests.rs"]
mod tests;
