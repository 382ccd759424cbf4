//! The two Connect codecs for unary calls: `application/json` (the proto3
//! JSON mapping, by pbjson: lowerCamelCase out, snake_case accepted in) and
//! `application/proto` (the binary encoding, as over gRPC).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Json,
    Proto,
}

impl Codec {
    /// The codec a request's content-type names; `None` for any other
    /// (or none), which Connect answers with `415`.
    pub fn of(headers: &HeaderMap) -> Option<Codec> {
        let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/json") {
            Some(Codec::Json)
        } else if media.eq_ignore_ascii_case("application/proto") {
            Some(Codec::Proto)
        } else {
            None
        }
    }

    pub fn content_type(self) -> HeaderValue {
        match self {
            Codec::Json => HeaderValue::from_static("application/json"),
            Codec::Proto => HeaderValue::from_static("application/proto"),
        }
    }

    /// The message in `body`, or why it is not one. An empty JSON body is
    /// the empty message, as an empty binary body is.
    pub fn decode<T>(self, body: &[u8]) -> Result<T, String>
    where
        T: prost::Message + Default + DeserializeOwned,
    {
        match self {
            Codec::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
            Codec::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            Codec::Proto => T::decode(body).map_err(|e| e.to_string()),
        }
    }

    pub fn encode<T>(self, message: &T) -> Bytes
    where
        T: prost::Message + Serialize,
    {
        match self {
            // A generated message always serialises: its map keys are
            // strings and its numbers finite or spelled as strings.
            Codec::Json => serde_json::to_vec(message)
                .expect("a proto message serialises to JSON")
                .into(),
            Codec::Proto => message.encode_to_vec().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1 as pb;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn content_types() {
        assert_eq!(Codec::of(&headers("application/json")), Some(Codec::Json));
        assert_eq!(
            Codec::of(&headers("Application/JSON; charset=utf-8")),
            Some(Codec::Json)
        );
        assert_eq!(Codec::of(&headers("application/proto")), Some(Codec::Proto));
        assert_eq!(Codec::of(&headers("application/grpc")), None);
        assert_eq!(Codec::of(&headers("text/plain")), None);
        assert_eq!(Codec::of(&HeaderMap::new()), None);
    }

    #[test]
    fn json_is_the_proto3_mapping() {
        let request: pb::VerifyRequest = Codec::Json
            .decode(br#"{"key":"k","required_scopes":["a"],"clientIp":"10.0.0.1"}"#)
            .unwrap();
        assert_eq!(request.required_scopes, ["a"]);
        assert_eq!(request.client_ip, "10.0.0.1");
        let response = pb::VerifyResponse {
            allowed: false,
            reason: pb::Reason::Unknown as i32,
            quota_remaining: Some(3),
            ..Default::default()
        };
        let json: serde_json::Value =
            serde_json::from_slice(&Codec::Json.encode(&response)).unwrap();
        // Defaults are left out; enums are names; 64-bit integers strings.
        assert_eq!(
            json,
            serde_json::json!({"reason": "REASON_UNKNOWN", "quotaRemaining": "3"})
        );
    }

    #[test]
    fn empty_bodies_are_empty_messages_and_garbage_is_refused() {
        let empty: pb::GetKeyRequest = Codec::Json.decode(b"").unwrap();
        assert_eq!(empty, pb::GetKeyRequest::default());
        let empty: pb::GetKeyRequest = Codec::Proto.decode(b"").unwrap();
        assert_eq!(empty, pb::GetKeyRequest::default());
        assert!(Codec::Json.decode::<pb::GetKeyRequest>(b"{").is_err());
        assert!(
            Codec::Json
                .decode::<pb::GetKeyRequest>(br#"{"nope":1}"#)
                .is_err()
        );
        assert!(
            Codec::Proto
                .decode::<pb::GetKeyRequest>(b"\xff\xff")
                .is_err()
        );
    }

    #[test]
    fn binary_round_trip() {
        let request = pb::GetKeyRequest {
            key_id: "key_x".into(),
        };
        let bytes = Codec::Proto.encode(&request);
        assert_eq!(
            Codec::Proto.decode::<pb::GetKeyRequest>(&bytes),
            Ok(request)
        );
    }
}
