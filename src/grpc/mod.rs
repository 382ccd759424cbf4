//! The gRPC surface: services, admin authentication, wire conversions and
//! the single error → status mapping.

pub mod admin_auth;
pub mod authorization_server;
mod check_codec;
pub mod check_request;
#[cfg(test)]
mod check_request_reference;
pub mod check_response;
mod check_wire;
pub mod convert;
pub mod ext_authz;
pub mod key_service;
pub mod reflection;
mod report_leak;
mod status;
mod usage;

/// Largest request keyward decodes: generous for any real request, small
/// enough that a client cannot make the server buffer megabytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
