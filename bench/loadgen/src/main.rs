//! `keyward-loadgen`: the Rust half of `bench/run`.
//!
//! - `seed`: generates keys in keyward's format and bulk-loads them into the
//!   Postgres `keys` table with COPY, writing the plaintext keys to a file.
//! - `prime`: verifies every key of a range exactly once (fills the caches,
//!   or the L1 for the memory measurement).
//! - `load`: N connections × M concurrent streams of Verify, ext_authz Check
//!   or Health/Check for a fixed duration after a warm-up; latency in an HDR
//!   histogram; the server's CPU time read from /proc around the measured
//!   window; JSON out. With `--requests N`, exactly N calls (for callgrind).
//! - `encode`: a pre-encoded gRPC request body (5-byte frame prefix +
//!   protobuf) for h2load.
//! - `l1-footprint`: bytes per key of keyward's L1 alone, record and cache
//!   structure apart.
//! - `sink`: an OTLP/gRPC trace collector that counts the spans it receives
//!   and discards them (for the span-export scenario).
//! - `revoke-lag`: revocation lag between two replicas (revoke on A, first
//!   denial on B), idle and with both under an open-loop Verify load.

mod call;
mod footprint;
mod load;
mod revoke_lag;
mod seed;
mod sink;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Seed(seed::SeedArgs),
    Prime(load::PrimeArgs),
    Load(load::LoadArgs),
    Encode(EncodeArgs),
    L1Footprint(footprint::FootprintArgs),
    Sink(sink::SinkArgs),
    RevokeLag(revoke_lag::RevokeLagArgs),
}

/// Writes one gRPC request body, framed, for h2load's `-d`.
#[derive(clap::Args)]
struct EncodeArgs {
    /// `verify`, `check` or `health`.
    #[arg(long)]
    rpc: call::Rpc,
    /// For verify and check: the key is the first line of this file.
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// Required scopes of the Verify or Check request.
    #[arg(long = "scope", default_value = "orders:read")]
    scopes: Vec<String>,
    #[arg(long)]
    out: PathBuf,
}

fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    use prost::Message;
    let message = match args.rpc {
        call::Rpc::Health => tonic_health::pb::HealthCheckRequest::default().encode_to_vec(),
        call::Rpc::Verify | call::Rpc::Check | call::Rpc::ConnectVerify => {
            let file = args
                .keys_file
                .ok_or_else(|| anyhow::anyhow!("--keys-file is needed for verify and check"))?;
            let key = call::read_keys(&file, 0, 1)?.remove(0);
            if matches!(args.rpc, call::Rpc::Check) {
                call::check_request(key, &args.scopes).encode_to_vec()
            } else {
                keyward::proto::v1::VerifyRequest {
                    key,
                    required_scopes: args.scopes,
                    client_ip: String::new(),
                }
                .encode_to_vec()
            }
        }
    };
    // gRPC framing: compressed flag (0), big-endian length, message.
    let mut body = Vec::with_capacity(5 + message.len());
    body.push(0);
    body.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    body.extend_from_slice(&message);
    std::fs::write(&args.out, body)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread: the harness pins the load generator to one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Seed(args) => runtime.block_on(seed::run(args)),
        Command::Prime(args) => runtime.block_on(load::prime(args)),
        Command::Load(args) => runtime.block_on(load::run(args)),
        Command::Encode(args) => encode(args),
        Command::L1Footprint(args) => runtime.block_on(footprint::run(args)),
        Command::Sink(args) => runtime.block_on(sink::run(args)),
        Command::RevokeLag(args) => runtime.block_on(revoke_lag::run(args)),
    }
}
