//! The parts of Envoy's `envoy.service.auth.v3.CheckRequest` that a decision
//! reads, as prost messages of their own: the peer's address, the method,
//! the path, the headers (the `headers` map or the raw `header_map`) and the
//! route's context extensions.
//!
//! Same wire format as the full message (tags and types from
//! third_party/envoy-proto), so Envoy's request decodes into it as it is;
//! everything else Envoy sends (destination, time, id, host, scheme,
//! protocol, metadata contexts, body, TLS session) is skipped by prost
//! without being built. A `map<string, string>` is, on the wire, a repeated
//! key/value entry, which is how the maps are declared here: no hashing and
//! no `String` per header. Strings are `Bytes` slices of the received
//! buffer; [`CheckRequest::attributes`] checks that the ones a decision
//! reads are UTF-8, as decoding them as `string` would.

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::{
        ext_authz::v3::pb::CheckRequest as FullRequest,
        pb::envoy::config::core::v3::address::Address as FullAddress,
    };
    use prost::Message;

    use super::*;

    /// Captured from Envoy 1.40 by tests/fixtures/envoy_check/capture.py.
    const HEADERS: &[u8] = include_bytes!("../../tests/fixtures/envoy_check/headers.pb");
    const RAW: &[u8] = include_bytes!("../../tests/fixtures/envoy_check/raw.pb");

    /// What the full message gives a decision, as the service read it
    /// before the trimmed decoder.
    struct Full {
        method: String,
        path: String,
        headers: HashMap<String, String>,
        raw: Vec<(String, Vec<u8>)>,
        context: HashMap<String, String>,
        peer: Option<IpAddr>,
    }

    fn full(bytes: &[u8]) -> Full {
        let attributes = FullRequest::decode(bytes).unwrap().attributes.unwrap();
        assert!(
            attributes.destination.is_some() && attributes.route_metadata_context.is_some(),
            "the fixture carries what the trimmed decoder skips"
        );
        let http = attributes.request.unwrap().http.unwrap();
        assert!(!http.id.is_empty() && !http.host.is_empty() && !http.protocol.is_empty());
        let peer = match attributes.source.unwrap().address.unwrap().address {
            Some(FullAddress::SocketAddress(socket)) => socket.address.parse().ok(),
            _ => None,
        };
        Full {
            method: http.method,
            path: http.path,
            headers: http.headers,
            raw: http
                .header_map
                .map(|m| {
                    m.headers
                        .into_iter()
                        .map(|h| (h.key, h.raw_value))
                        .collect()
                })
                .unwrap_or_default(),
            context: attributes.context_extensions,
            peer,
        }
    }

    fn assert_same(bytes: &[u8]) -> Full {
        let full = full(bytes);
        let trimmed = CheckRequest::decode(Bytes::copy_from_slice(bytes)).unwrap();
        let seen = trimmed.attributes().unwrap();
        assert_eq!(seen.method, full.method);
        assert_eq!(seen.path, full.path);
        assert_eq!(seen.peer, full.peer);
        assert!(seen.peer.is_some());
        let map: HashMap<String, String> = seen
            .headers
            .map()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(map, full.headers);
        for name in full.headers.keys() {
            assert_eq!(seen.headers.field(name), full.headers.field(name), "{name}");
        }
        for (name, value) in &full.raw {
            let value = str::from_utf8(value).ok();
            assert_eq!(seen.headers.field(name), value, "raw {name}");
        }
        let context: HashMap<String, String> = seen
            .context
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(context, full.context);
        assert_eq!(seen.context.field("keyward_scopes"), Some("orders:read"));
        assert_eq!(seen.headers.field("x-missing"), None);
        full
    }

    #[test]
    fn envoys_request_reads_as_the_full_message_reads() {
        let full = assert_same(HEADERS);
        assert!(full.headers.len() > 5 && full.raw.is_empty());
    }

    #[test]
    fn envoys_raw_header_map_reads_as_the_full_message_reads() {
        let full = assert_same(RAW);
        assert!(full.headers.is_empty() && full.raw.len() > 5);
    }

    fn entry(key: &str, value: &[u8]) -> Entry {
        Entry {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value),
        }
    }

    fn with_headers(headers: Vec<Entry>) -> Vec<u8> {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        headers,
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_repeated_map_key_reads_as_its_last_entry_as_in_a_map() {
        let bytes = with_headers(vec![
            entry("x-api-key", b"first"),
            entry("x-api-key", b"last"),
        ]);
        let full = full_headers(&bytes).unwrap();
        let trimmed = CheckRequest::decode(&bytes[..]).unwrap();
        let seen = trimmed.attributes().unwrap();
        assert_eq!(seen.headers.field("x-api-key"), Some("last"));
        assert_eq!(full.get("x-api-key").map(String::as_str), Some("last"));
    }

    #[test]
    fn a_header_that_is_not_utf8_fails_as_the_full_message_fails() {
        let bytes = with_headers(vec![entry("x-api-key", b"\xff\xfe")]);
        assert!(full_headers(&bytes).is_err());
        let trimmed = CheckRequest::decode(&bytes[..]).unwrap();
        assert!(trimmed.attributes().is_err());
    }

    fn full_headers(bytes: &[u8]) -> Result<HashMap<String, String>, prost::DecodeError> {
        let request = FullRequest::decode(bytes)?;
        Ok(request
            .attributes
            .unwrap()
            .request
            .unwrap()
            .http
            .unwrap()
            .headers)
    }

    #[test]
    fn debug_output_names_headers_without_their_values() {
        let secret = "acme_live_kw0FixtureOnlyNotIssuedAnywhere0000000000000000000";
        let request = CheckRequest::decode(HEADERS).unwrap();
        let shown = format!("{request:?}");
        assert!(shown.contains("x-api-key") && !shown.contains(secret));
    }
}
