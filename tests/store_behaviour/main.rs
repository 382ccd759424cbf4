//! One behaviour suite for every `KeyStore` engine: each test runs against
//! SQLite and Postgres (a private schema per test).

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod fixtures;
mod keys;
mod queries;
mod writes;
