//! One unary call, generic over its messages: decode the body into the
//! request message, hand it to the service method with the HTTP headers as
//! gRPC metadata (so `authorization: Bearer` and `traceparent` mean what
//! they mean over gRPC) and the connection info as extensions (so the
//! caller's address is the same), then encode the reply.

use std::{future::Future, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Response, header::CONTENT_TYPE, request::Parts};
use serde::{Serialize, de::DeserializeOwned};
use tonic::{Code, Status, body::Body, metadata::MetadataMap};

use super::{codec::Codec, error::ConnectError};

pub struct Call {
    pub codec: Codec,
    pub parts: Parts,
    pub body: Bytes,
    pub timeout: Option<Duration>,
}

impl Call {
    pub async fn unary<Req, Resp, F, Fut>(self, method: F) -> Result<Response<Body>, ConnectError>
    where
        Req: prost::Message + Default + DeserializeOwned,
        Resp: prost::Message + Serialize,
        F: FnOnce(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let message: Req = self.codec.decode(&self.body).map_err(|why| {
            ConnectError::new(Code::InvalidArgument, format!("bad request: {why}"))
        })?;
        let request = tonic::Request::from_parts(
            MetadataMap::from_headers(self.parts.headers),
            self.parts.extensions,
            message,
        );
        let reply = match self.timeout {
            None => method(request).await?,
            Some(timeout) => tokio::time::timeout(timeout, method(request))
                .await
                .map_err(|_| ConnectError::new(Code::DeadlineExceeded, "the deadline passed"))??,
        };
        let (metadata, message, _) = reply.into_parts();
        let mut response = Response::new(Body::new(http_body_util::Full::new(
            self.codec.encode(&message),
        )));
        copy_metadata(metadata, response.headers_mut());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, self.codec.content_type());
        Ok(response)
    }
}

/// The reply's metadata, as Connect sends it: plain response headers.
fn copy_metadata(metadata: MetadataMap, headers: &mut HeaderMap) {
    for (name, value) in metadata.into_headers().iter() {
        if !name.as_str().starts_with("grpc-") {
            headers.append(name.clone(), value.clone());
        }
    }
}
