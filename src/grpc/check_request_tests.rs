//! The hand-walked Check request against envoy-types' full decoding (on
//! requests captured from Envoy) and against the prost-derived trimmed
//! messages it replaced (on those requests broken every way a byte can
//! break them).

use std::collections::HashMap;

use envoy_types::{
    ext_authz::v3::pb::CheckRequest as FullRequest,
    pb::envoy::config::core::v3::address::Address as FullAddress,
};
use prost::Message;

use super::*;
use crate::grpc::check_request_reference as reference;

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
    let seen = trimmed.attributes();
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

fn entry(key: &str, value: &[u8]) -> reference::Entry {
    reference::Entry {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value),
    }
}

fn with_headers(headers: Vec<reference::Entry>) -> Vec<u8> {
    reference::CheckRequest {
        attributes: Some(reference::AttributeContext {
            request: Some(reference::Request {
                http: Some(reference::HttpRequest {
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
    let trimmed = CheckRequest::decode(Bytes::from(bytes)).unwrap();
    let seen = trimmed.attributes();
    assert_eq!(seen.headers.field("x-api-key"), Some("last"));
    assert_eq!(full.get("x-api-key").map(String::as_str), Some("last"));
}

#[test]
fn a_header_that_is_not_utf8_fails_as_the_full_message_fails() {
    let bytes = with_headers(vec![entry("x-api-key", b"\xff\xfe")]);
    assert!(full_headers(&bytes).is_err());
    assert!(CheckRequest::decode(Bytes::from(bytes)).is_err());
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
    let request = CheckRequest::decode(Bytes::from_static(HEADERS)).unwrap();
    let shown = format!("{request:?}");
    assert!(shown.contains("x-api-key") && !shown.contains(secret));
}

/// What a decision reads, as owned values, or that decoding failed.
type Seen = Option<(
    String,
    String,
    Option<IpAddr>,
    Vec<(String, String)>,
    Vec<(String, Option<String>)>,
)>;

const NAMES: [&str; 5] = [
    "x-api-key",
    "authorization",
    "traceparent",
    ":path",
    "x-missing",
];

/// The owned view of what either decoder read: the same fields of
/// `Attributes` in both, named here once.
fn seen<'a>(
    method: &str,
    path: &str,
    peer: Option<IpAddr>,
    context: impl Iterator<Item = (&'a str, &'a str)>,
    headers: &dyn Fields,
    map: impl Iterator<Item = (&'a str, &'a str)>,
) -> Seen {
    Some((
        method.to_owned(),
        path.to_owned(),
        peer,
        context.map(|(k, v)| (k.into(), v.into())).collect(),
        NAMES
            .iter()
            .map(|n| (n.to_string(), headers.field(n).map(str::to_owned)))
            .chain(map.map(|(k, v)| (k.into(), Some(v.into()))))
            .collect(),
    ))
}

fn walked(bytes: &[u8]) -> Seen {
    let request = CheckRequest::decode(Bytes::copy_from_slice(bytes)).ok()?;
    let a = request.attributes();
    let map = a.headers.map();
    seen(
        a.method,
        a.path,
        a.peer,
        a.context.iter(),
        &a.headers,
        map.iter(),
    )
}

fn derived(bytes: &[u8]) -> Seen {
    let request = reference::CheckRequest::decode(bytes).ok()?;
    let a = request.attributes().ok()?;
    let map = a.headers.map();
    seen(
        a.method,
        a.path,
        a.peer,
        a.context.iter(),
        &a.headers,
        map.iter(),
    )
}

#[test]
fn every_truncation_of_envoys_requests_reads_as_the_derived_messages_read() {
    for fixture in [HEADERS, RAW] {
        assert!(walked(fixture).is_some());
        for len in 0..fixture.len() {
            let cut = &fixture[..len];
            assert_eq!(walked(cut), derived(cut), "cut at {len}");
        }
    }
}

#[test]
fn every_byte_of_envoys_requests_changed_reads_as_the_derived_messages_read() {
    // Each byte set to values that change a tag, a wire type, a length or a
    // varint's continuation: a few thousand inputs, most of them broken.
    for fixture in [HEADERS, RAW] {
        let mut bytes = fixture.to_vec();
        for i in 0..bytes.len() {
            let kept = bytes[i];
            for value in [
                0x00,
                0x01,
                0x02,
                0x07,
                0x0a,
                0x12,
                0x7f,
                0x80,
                0xff,
                kept ^ 0x01,
            ] {
                bytes[i] = value;
                assert_eq!(
                    walked(&bytes),
                    derived(&bytes),
                    "byte {i} set to {value:#x}"
                );
            }
            bytes[i] = kept;
        }
    }
}

#[test]
fn repeated_messages_merge_as_prost_merges_them() {
    // The request and its http part twice: prost merges both into one
    // message, repeated fields appended, the last method winning.
    let first = with_headers(vec![entry("x-api-key", b"one"), entry("a", b"1")]);
    let mut second = with_headers(vec![entry("b", b"2")]);
    let mut bytes = first.clone();
    bytes.append(&mut second);
    let mut method = reference::CheckRequest {
        attributes: Some(reference::AttributeContext {
            request: Some(reference::Request {
                http: Some(reference::HttpRequest {
                    method: Bytes::from_static(b"POST"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
    .encode_to_vec();
    bytes.append(&mut method);
    let seen = walked(&bytes).unwrap();
    assert_eq!(seen, derived(&bytes).unwrap());
    assert_eq!(seen.0, "POST");
    assert_eq!(seen.4.len(), NAMES.len() + 3);
}
