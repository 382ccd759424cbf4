//! How a store connects: pool size, waits, and what sits in front of
//! Postgres. Below the engines, which read it, and `connect`, which picks one.

use std::time::Duration;

pub use super::hosts::PgSecurity;

/// What sits between keyward and Postgres.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooler {
    /// A direct connection (or a pooler that keeps one server session per
    /// client connection, which is the same to keyward).
    #[default]
    None,
    /// A pooler in session mode (PgBouncer `pool_mode = session`).
    Session,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`):
    /// consecutive statements of one connection may run on different server
    /// sessions, so nothing may rely on session state.
    Transaction,
}

impl Pooler {
    /// Named prepared statements live in a server session; behind a
    /// transaction pooler they meet other clients' statements of the same
    /// name and run the wrong SQL, so every statement is sent unnamed.
    pub fn named_statements(self) -> bool {
        self != Pooler::Transaction
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a query may wait for a free connection (or a new one).
    pub acquire_timeout: Duration,
    pub pooler: Pooler,
    /// A direct (or session-pooled) Postgres URL for what needs a server
    /// session: the migration lock. `None`: the database URL.
    pub session_url: Option<String>,
    /// TLS and the password for every Postgres connection.
    pub security: PgSecurity,
    /// A read replica for the hot-path read (`replica.rs`).
    pub read_url: Option<String>,
    /// A replica further behind the primary than this is not read.
    pub read_max_lag: Duration,
    /// A digest changed this long before the replica's watermark may be
    /// read from it (the revocation margin).
    pub read_margin: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            pooler: Pooler::None,
            session_url: None,
            security: PgSecurity::default(),
            read_url: None,
            read_max_lag: Duration::from_secs(1),
            read_margin: Duration::from_secs(4),
        }
    }
}
