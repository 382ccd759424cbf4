//! The prost-derived trimmed `CheckRequest` that `check_request` replaced,
//! kept for its tests: the hand-walked request must read every input, well
//! formed or not, exactly as this decoding did.

use std::{fmt, net::IpAddr, str};

use bytes::Bytes;

use crate::authz::Fields;

#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckRequest {
    #[prost(message, optional, tag = "1")]
    pub attributes: Option<AttributeContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeContext {
    #[prost(message, optional, tag = "1")]
    pub source: Option<Peer>,
    #[prost(message, optional, tag = "4")]
    pub request: Option<Request>,
    #[prost(message, repeated, tag = "10")]
    pub context_extensions: Vec<Entry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    #[prost(message, optional, tag = "1")]
    pub address: Option<Address>,
}

/// `config.core.v3.Address`, whose oneof's other members (a pipe, an
/// internal address) carry no IP and are skipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Address {
    #[prost(message, optional, tag = "1")]
    pub socket_address: Option<SocketAddress>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SocketAddress {
    #[prost(bytes = "bytes", tag = "2")]
    pub address: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(message, optional, tag = "2")]
    pub http: Option<HttpRequest>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRequest {
    #[prost(bytes = "bytes", tag = "2")]
    pub method: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<Entry>,
    #[prost(bytes = "bytes", tag = "4")]
    pub path: Bytes,
    #[prost(message, optional, tag = "13")]
    pub header_map: Option<HeaderMap>,
}

/// One entry of a `map<string, string>`.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct Entry {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `config.core.v3.HeaderMap`, sent instead of the map with
/// `encode_raw_headers`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderMap {
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<RawHeader>,
}

/// `config.core.v3.HeaderValue` as `header_map` carries it: the value in
/// `raw_value` (bytes on the wire too, so it is not required to be UTF-8).
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct RawHeader {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub raw_value: Bytes,
}

/// Header values hold the key: debug output names the headers only.
impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry").field("key", &self.key).finish()
    }
}

impl fmt::Debug for RawHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawHeader").field("key", &self.key).finish()
    }
}

/// A field declared `string` in Envoy's proto that is not UTF-8: the full
/// message would not have decoded either.
#[derive(Debug, thiserror::Error)]
#[error("failed to decode Protobuf message: {0} is not UTF-8")]
pub struct NotUtf8(&'static str);

/// What a decision reads of a Check request, every string checked.
pub struct Attributes<'a> {
    pub method: &'a str,
    /// The request target: path and query string.
    pub path: &'a str,
    pub headers: Headers<'a>,
    pub context: Entries<'a>,
    pub peer: Option<IpAddr>,
}

impl CheckRequest {
    pub fn attributes(&self) -> Result<Attributes<'_>, NotUtf8> {
        let attributes = self.attributes.as_ref();
        let http = attributes
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let context = attributes.map_or(&[][..], |a| &a.context_extensions);
        check_entries(context, "AttributeContext.context_extensions")?;
        let (method, path, map, raw) = match http {
            Some(http) => (
                text(&http.method, "HttpRequest.method")?,
                text(&http.path, "HttpRequest.path")?,
                &http.headers[..],
                http.header_map.as_ref().map_or(&[][..], |m| &m.headers),
            ),
            None => ("", "", &[][..], &[][..]),
        };
        check_entries(map, "HttpRequest.headers")?;
        for header in raw {
            text(&header.key, "HeaderValue.key")?;
        }
        let socket = attributes
            .and_then(|a| a.source.as_ref())
            .and_then(|s| s.address.as_ref())
            .and_then(|a| a.socket_address.as_ref());
        let peer = match socket {
            Some(socket) => text(&socket.address, "SocketAddress.address")?.parse().ok(),
            None => None,
        };
        Ok(Attributes {
            method,
            path,
            headers: Headers { map, raw },
            context: Entries(context),
            peer,
        })
    }
}

fn text<'a>(bytes: &'a Bytes, field: &'static str) -> Result<&'a str, NotUtf8> {
    str::from_utf8(bytes).map_err(|_| NotUtf8(field))
}

fn check_entries(entries: &[Entry], field: &'static str) -> Result<(), NotUtf8> {
    for entry in entries {
        text(&entry.key, field)?;
        text(&entry.value, field)?;
    }
    Ok(())
}

/// A map's entries. The last entry of a repeated key wins, as it does when
/// a map is decoded.
#[derive(Clone, Copy)]
pub struct Entries<'a>(&'a [Entry]);

impl<'a> Entries<'a> {
    /// Every entry, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter_map(|e| Some((str::from_utf8(&e.key).ok()?, str::from_utf8(&e.value).ok()?)))
    }
}

impl Fields for Entries<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        last(self.0, name)
    }
}

fn last<'a>(entries: &'a [Entry], name: &str) -> Option<&'a str> {
    let entry = entries.iter().rev().find(|e| e.key == name.as_bytes())?;
    // Checked by `attributes`.
    str::from_utf8(&entry.value).ok()
}

/// Headers as Envoy sends them: the `headers` map, or `header_map` when the
/// filter sets `encode_raw_headers` (where a value that is not UTF-8 reads
/// as absent).
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    map: &'a [Entry],
    raw: &'a [RawHeader],
}

impl<'a> Headers<'a> {
    /// The `headers` map alone.
    pub fn map(&self) -> Entries<'a> {
        Entries(self.map)
    }
}

impl Fields for Headers<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        if let Some(value) = last(self.map, name) {
            return Some(value);
        }
        self.raw
            .iter()
            .find(|h| h.key == name.as_bytes())
            .and_then(|h| str::from_utf8(&h.raw_value).ok())
    }
}
