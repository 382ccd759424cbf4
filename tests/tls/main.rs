//! TLS and mTLS on the gRPC port, with certificates made in the test
//! (rcgen): who may connect, renewal without a restart, and the CLI over
//! TLS. TLS does not depend on the store, so these run on SQLite only.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod cli;
mod connect;
mod console;
mod pki;
mod renewal;
