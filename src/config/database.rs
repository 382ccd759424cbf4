//! Where the keys live: the database settings of `keyward serve`.

use std::time::Duration;

use crate::store::{Pooler, StoreOptions};

use super::{SecretUrl, secret_file};

/// Where the keys live.
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// `postgres://user:pass@host/db` or `sqlite:PATH` (the file is created if
    /// missing). Prefer the variable: a URL with a password on the command
    /// line shows in `ps`.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_URL",
        default_value = "sqlite:keyward.db",
        hide_env_values = true
    )]
    pub database_url: SecretUrl,

    /// File holding the database URL (e.g. a mounted Secret), read once at
    /// start; excludes --database-url.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_URL_FILE",
        value_name = "PATH",
        value_parser = secret_file,
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<SecretUrl>,

    /// Connections in the database pool.
    #[arg(long, env = "KEYWARD_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Bound on every database call but the hot-path read (admin reads and
    /// writes, waiting for a connection); past it the call fails UNAVAILABLE.
    #[arg(long, env = "KEYWARD_DATABASE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub database_timeout: Duration,

    /// What sits between keyward and Postgres: `none`, `session` (PgBouncer
    /// pool_mode=session) or `transaction` (pool_mode=transaction: no named
    /// prepared statements; the bus then needs Redis or
    /// --database-session-url, and so do migrations). With `none` or
    /// `session`, keyward checks at start that the URL keeps a session and
    /// refuses to start if it does not.
    #[arg(long, env = "KEYWARD_DATABASE_POOLER", value_enum, default_value_t = Pooler::None)]
    pub database_pooler: Pooler,

    /// A direct (or session-mode) Postgres URL for what a transaction pooler
    /// cannot carry: the LISTEN/NOTIFY bus and migrations. Default: the
    /// database URL.
    #[arg(long, env = "KEYWARD_DATABASE_SESSION_URL", hide_env_values = true)]
    pub database_session_url: Option<SecretUrl>,

    /// File holding the session URL, read once at start; excludes
    /// --database-session-url.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_SESSION_URL_FILE",
        value_name = "PATH",
        value_parser = secret_file,
        conflicts_with = "database_session_url"
    )]
    pub database_session_url_file: Option<SecretUrl>,
}

impl DatabaseArgs {
    /// The database URL: from --database-url-file when given.
    pub fn url(&self) -> &SecretUrl {
        self.database_url_file
            .as_ref()
            .unwrap_or(&self.database_url)
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_timeout,
            pooler: self.database_pooler,
            session_url: self
                .session_url_setting()
                .map(|url| url.expose().to_owned()),
        }
    }

    /// The URL that keeps a server session (for LISTEN): the session URL,
    /// else the database URL unless it goes through a transaction pooler.
    pub fn session_url(&self) -> Option<&str> {
        match (self.session_url_setting(), self.database_pooler) {
            (Some(url), _) => Some(url.expose()),
            (None, Pooler::Transaction) => None,
            (None, _) => Some(self.url().expose()),
        }
    }

    /// --database-session-url, or the file named by --database-session-url-file.
    pub fn session_url_setting(&self) -> Option<&SecretUrl> {
        self.database_session_url
            .as_ref()
            .or(self.database_session_url_file.as_ref())
    }
}
