//! Code generated from `proto/keyward/v1/keyward.proto` (messages, the
//! gRPC service, and their proto3 JSON mapping), and the descriptor sets
//! that server reflection serves.

pub mod timestamp;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("keyward.v1");
    include!(concat!(env!("OUT_DIR"), "/keyward.v1.serde.rs"));
}

pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keyward_descriptor");

/// `envoy.service.auth.v3` and its imports, built from
/// `third_party/envoy-proto` (the types themselves are envoy-types').
pub const ENVOY_AUTHZ_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("envoy_authz_descriptor");
