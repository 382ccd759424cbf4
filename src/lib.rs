//! Keyward: an API-key authority for microservices.
//!
//! A map of the crate, from the outside in:
//! - [`cli`]: the `keyward` command line (server, migrations, admin client).
//! - [`config`]: flags and `KEYWARD_*` variables for `keyward serve`, and
//!   the optional TOML file.
//! - [`startup`]: builds the gRPC server ([`startup::Application`]).
//! - [`serve`]: the gRPC port's transport: accept loop, resource limits,
//!   idle and request timeouts, caught panics.
//! - [`grpc`]: the gRPC services and the one place errors become statuses.
//! - [`listen`]: binding listen addresses (`[::]` is dual-stack, IPv4 alone without IPv6).
//! - [`tls`]: TLS and mTLS for the gRPC port, with certificates reloaded from disk.
//! - [`admin`]: issue, revoke, rotate, update: store write, then cache eviction.
//! - [`authz`]: Envoy ext_authz without the wire: key sources, route rules,
//!   answers.
//! - [`verify`]: the hot path shared by Verify, ext_authz and admin auth.
//! - [`decision`]: the pure decision on a key record.
//! - [`limit`]: rate limits and quotas (local GCRA, or one Redis script).
//! - [`usage`]: calls per key and minute, counted in memory, written in batches.
//! - [`cache`]: the tiered lookup (in-process L1, then the store).
//! - [`store`]: the `KeyStore` trait and its Postgres and SQLite engines.
//! - [`key`], [`scope`], [`record`]: the vocabulary.
// The redis crate's cluster connection types nest deeply enough that
// proving a gRPC handler's future Send passes the default limit of 128.
#![recursion_limit = "256"]
#![forbid(unsafe_code)]

pub mod admin;
pub mod authz;
pub mod cache;
pub mod cli;
pub mod config;
pub mod decision;
pub mod error;
pub mod grpc;
pub mod http;
pub mod intern;
pub mod key;
pub mod limit;
pub mod listen;
pub mod proto;
pub mod record;
pub mod scan;
pub mod scope;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod usage;
pub mod validate;
pub mod verify;
