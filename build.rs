//! Compiles proto/ into Rust with a pure-Rust protobuf compiler (protox), so a
//! fresh machine needs no `protoc`, and writes the descriptor set that server
//! reflection serves.
use prost::Message;
use std::{env, path::PathBuf};

const PROTOS: &[&str] = &["proto/keyward/v1/keyward.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // sqlx::migrate! embeds the migrations at compile time.
    println!("cargo:rerun-if-changed=migrations");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out.join("keyward_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
