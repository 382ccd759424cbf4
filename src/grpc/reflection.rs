//! Server reflection that describes every service the port serves: the
//! KeyService, Envoy's ext_authz, health, and both reflection versions
//! themselves (each builder only adds its own by default, so grpcurl would
//! list one of the two).

use tonic_reflection::{pb, server::Builder};

use crate::proto;

/// A builder holding every served descriptor set; call `build_v1` or
/// `build_v1alpha` on it.
pub fn builder() -> Builder<'static> {
    Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(proto::ENVOY_AUTHZ_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(pb::v1alpha::FILE_DESCRIPTOR_SET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_descriptor_set_builds() {
        assert!(builder().build_v1().is_ok());
        assert!(builder().build_v1alpha().is_ok());
    }
}
