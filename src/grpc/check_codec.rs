//! The Check method's codec: the request walked in place from the received
//! buffer (`CheckRequest::decode`), the response encoded by prost. A request
//! that does not decode is `INTERNAL`, as tonic's prost codec answers.

use bytes::Buf;
use prost::Message;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use super::{check_request::CheckRequest, check_response::CheckResponse};

#[derive(Debug, Clone, Copy, Default)]
pub struct CheckCodec;

impl Codec for CheckCodec {
    type Encode = CheckResponse;
    type Decode = CheckRequest;
    type Encoder = CheckCodec;
    type Decoder = CheckCodec;

    fn encoder(&mut self) -> Self::Encoder {
        CheckCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckCodec
    }
}

impl Encoder for CheckCodec {
    type Item = CheckResponse;
    type Error = Status;

    fn encode(&mut self, item: CheckResponse, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // An EncodeBuf grows as it is written: encoding cannot run out of room.
        item.encode(buf)
            .map_err(|error| Status::internal(error.to_string()))
    }
}

impl Decoder for CheckCodec {
    type Item = CheckRequest;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<CheckRequest>, Status> {
        // The buffer holds exactly one message; taking it whole is one split
        // of tonic's buffer, not a copy.
        let bytes = buf.copy_to_bytes(buf.remaining());
        CheckRequest::decode(bytes).map(Some).map_err(|error| {
            Status::internal(format!("failed to decode Protobuf message: {error}"))
        })
    }
}
