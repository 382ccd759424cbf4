//! Code generated from `proto/keyward/v1/keyward.proto`, and the descriptor
//! set that server reflection serves.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("keyward.v1");
}

pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("keyward_descriptor");
