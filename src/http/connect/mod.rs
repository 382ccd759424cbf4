//! The KeyService over the Connect protocol, unary
//! (<https://connectrpc.com/docs/protocol>): `POST
//! /keyward.v1.KeyService/<Method>` with `application/json` or
//! `application/proto`, answered by the same service implementation as gRPC
//! through one generic handler ([`call::Call::unary`]) and a table from
//! method name to trait method ([`handler`]), not a copy of each RPC.
//!
//! Refusals before the call, in order: a method other than POST is `405`;
//! an unknown method `404` (`unimplemented`); another content-type `415`;
//! a bad `Connect-Protocol-Version` or `Connect-Timeout-Ms` `400`; a body
//! past [`crate::grpc::MAX_REQUEST_BYTES`] `resource_exhausted`.
//!
//! - [`codec`]: JSON (pbjson) and binary.
//! - [`headers`]: the protocol's request headers.
//! - [`call`]: decode, call, encode.
//! - [`error`]: the JSON error body and its HTTP status.

mod call;
mod codec;
mod error;
mod headers;

use std::{future::Future, pin::Pin, sync::Arc};

use http::{HeaderValue, Method, StatusCode, header};
use tonic::Code;

use self::{call::Call, codec::Codec, error::ConnectError};
use crate::{
    grpc::MAX_REQUEST_BYTES,
    http::{BoxResponse, Endpoint, HttpRequest, HttpResponse, body, reply},
    proto::v1::key_service_server::KeyService,
};

pub use error::code_name;

/// Where the service's methods are, under the path of its gRPC name.
pub const MOUNT: &str = "/keyward.v1.KeyService";

type Answer = Pin<Box<dyn Future<Output = Result<HttpResponse, ConnectError>> + Send>>;
type Handler<S> = fn(Arc<S>, Call) -> Answer;

/// The Connect endpoint of a KeyService implementation.
pub struct Connect<S> {
    service: Arc<S>,
}

impl<S: KeyService> Connect<S> {
    pub fn new(service: Arc<S>) -> Self {
        Self { service }
    }
}

impl<S: KeyService> Endpoint for Connect<S> {
    fn call(&self, request: HttpRequest) -> BoxResponse {
        let service = self.service.clone();
        Box::pin(async move {
            match answer(service, request).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            }
        })
    }
}

async fn answer<S: KeyService>(
    service: Arc<S>,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectError> {
    if request.method() != Method::POST {
        let mut response = reply::empty(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let method = request
        .uri()
        .path()
        .strip_prefix(MOUNT)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or_default();
    let Some(handler) = handler::<S>(method) else {
        return Err(ConnectError::new(
            Code::Unimplemented,
            "no such method in keyward.v1.KeyService",
        ));
    };
    let Some(codec) = Codec::of(request.headers()) else {
        let mut response = reply::text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type must be application/json or application/proto\n",
        );
        response.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, application/proto"),
        );
        return Ok(response);
    };
    let timeout = headers::check(request.headers())?;
    let (parts, incoming) = request.into_parts();
    let body = body::read(incoming, MAX_REQUEST_BYTES)
        .await
        .map_err(|error| match error {
            body::BodyError::TooLarge(_) => {
                ConnectError::new(Code::ResourceExhausted, error.to_string())
            }
            body::BodyError::Unreadable => {
                ConnectError::new(Code::DeadlineExceeded, error.to_string())
            }
        })?;
    handler(
        service,
        Call {
            codec,
            parts,
            body,
            timeout,
        },
    )
    .await
}

/// The trait method each Connect method name calls: every RPC of
/// `service KeyService` (a new one is added here too).
fn handler<S: KeyService>(method: &str) -> Option<Handler<S>> {
    let handler: Handler<S> = match method {
        "Issue" => |s, c| Box::pin(async move { c.unary(|r| s.issue(r)).await }),
        "Verify" => |s, c| Box::pin(async move { c.unary(|r| s.verify(r)).await }),
        "Revoke" => |s, c| Box::pin(async move { c.unary(|r| s.revoke(r)).await }),
        "Rotate" => |s, c| Box::pin(async move { c.unary(|r| s.rotate(r)).await }),
        "GetKey" => |s, c| Box::pin(async move { c.unary(|r| s.get_key(r)).await }),
        "ListKeys" => |s, c| Box::pin(async move { c.unary(|r| s.list_keys(r)).await }),
        "UpdateKey" => |s, c| Box::pin(async move { c.unary(|r| s.update_key(r)).await }),
        "ListAuditEvents" => {
            |s, c| Box::pin(async move { c.unary(|r| s.list_audit_events(r)).await })
        }
        "GetUsage" => |s, c| Box::pin(async move { c.unary(|r| s.get_usage(r)).await }),
        "ReportLeak" => |s, c| Box::pin(async move { c.unary(|r| s.report_leak(r)).await }),
        _ => return None,
    };
    Some(handler)
}
