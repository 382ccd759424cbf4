//! Compiles proto/ into Rust with a pure-Rust protobuf compiler (protox), so a
//! fresh machine needs no `protoc`; generates the proto3 JSON mapping of the
//! same messages (pbjson), and writes the descriptor sets that server
//! reflection serves.
use prost::Message;
use std::{env, path::PathBuf};

const PROTOS: &[&str] = &["proto/keyward/v1/keyward.proto"];

/// Envoy's ext_authz service, for reflection only: its Rust types come from
/// the envoy-types crate (see third_party/envoy-proto/README.md).
const ENVOY_PROTO_DIR: &str = "third_party/envoy-proto";
const ENVOY_PROTOS: &[&str] = &["envoy/service/auth/v3/external_auth.proto"];

/// The well-known types are pbjson's, which carry their JSON mapping, in the
/// generated code and in the JSON code alike.
const WELL_KNOWN: (&str, &str) = (".google.protobuf", "::pbjson_types");
/// Except Timestamp, whose JSON is keyward's own (Z-normalised, 0/3/6/9
/// digits, as grpcurl prints it). Both builders pick the longest matching
/// extern path, so this wins over `WELL_KNOWN` for this one type.
const TIMESTAMP: (&str, &str) = (
    ".google.protobuf.Timestamp",
    "crate::proto::timestamp::Timestamp",
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // sqlx::migrate! embeds the migrations at compile time.
    println!("cargo:rerun-if-changed=migrations");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    println!("cargo:rerun-if-changed={ENVOY_PROTO_DIR}");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    let encoded = fds.encode_to_vec();
    std::fs::write(out.join("keyward_descriptor.bin"), &encoded)?;
    tonic_prost_build::configure()
        // Turns off the default mapping to prost-types, so that ours applies.
        .compile_well_known_types(true)
        .extern_path(WELL_KNOWN.0, WELL_KNOWN.1)
        .extern_path(TIMESTAMP.0, TIMESTAMP.1)
        .compile_fds(fds)?;
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .extern_path(WELL_KNOWN.0, WELL_KNOWN.1)
        .extern_path(TIMESTAMP.0, TIMESTAMP.1)
        .build(&[".keyward"])?;

    let envoy = protox::compile(ENVOY_PROTOS, [ENVOY_PROTO_DIR])?;
    std::fs::write(
        out.join("envoy_authz_descriptor.bin"),
        envoy.encode_to_vec(),
    )?;
    Ok(())
}
