//! Where the keys live: the database settings of `keyward serve`.

use std::time::Duration;

use std::path::PathBuf;

use sqlx::postgres::PgSslMode;

use crate::store::{PgSecurity, Pooler, StoreOptions, parse_ssl_mode};

use super::{SecretUrl, secret::Secret, secret::secret_text_file, secret_file};

/// Where the keys live.
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// `postgres://user:pass@host/db` or `sqlite:PATH` (the file is created if
    /// missing). Postgres may list several hosts,
    /// `postgres://user@a:5432,b:5432/db?target_session_attrs=read-write`:
    /// keyward uses the first that takes writes and follows a fail-over to
    /// another without a restart (read-write is the default). Prefer the
    /// variable: a URL with a password on the command line shows in `ps`.
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

    /// A Postgres read replica (or several hosts; default
    /// target_session_attrs=prefer-standby) for the hot-path read. It is read
    /// only while it is within --revocation-bound of the primary, and never
    /// for a key this replica knows changed since; writes, admin reads and
    /// the invalidation outbox stay on the primary.
    #[arg(long, env = "KEYWARD_DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<SecretUrl>,

    /// File holding the read replica URL, read once at start; excludes
    /// --database-read-url.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_READ_URL_FILE",
        value_name = "PATH",
        value_parser = secret_file,
        conflicts_with = "database_read_url"
    )]
    pub database_read_url_file: Option<SecretUrl>,

    /// TLS to Postgres, over the URLs' `sslmode`: disable, allow, prefer,
    /// require, verify-ca (the server's certificate chains to
    /// --database-ssl-root-cert) or verify-full (and names the host).
    /// Unset: what each URL says (libpq's default, prefer).
    #[arg(long, env = "KEYWARD_DATABASE_SSL_MODE", value_parser = parse_ssl_mode)]
    pub database_ssl_mode: Option<PgSslMode>,

    /// PEM file of the CA(s) the Postgres server certificate must chain to
    /// (verify-ca, verify-full); unset: the system's roots.
    #[arg(long, env = "KEYWARD_DATABASE_SSL_ROOT_CERT", value_name = "PATH")]
    pub database_ssl_root_cert: Option<PathBuf>,

    /// PEM client certificate, for a server that asks for one (clientcert
    /// in pg_hba.conf); with --database-ssl-key.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_SSL_CERT",
        value_name = "PATH",
        requires = "database_ssl_key"
    )]
    pub database_ssl_cert: Option<PathBuf>,

    /// PEM private key of --database-ssl-cert (a mounted Secret).
    #[arg(
        long,
        env = "KEYWARD_DATABASE_SSL_KEY",
        value_name = "PATH",
        requires = "database_ssl_cert"
    )]
    pub database_ssl_key: Option<PathBuf>,

    /// File holding the Postgres password, read once at start, for every
    /// Postgres URL (over a password in them), so the URLs hold none.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_PASSWORD_FILE",
        value_name = "PATH",
        value_parser = secret_text_file
    )]
    pub database_password_file: Option<Secret>,
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
            security: self.security(),
            // Only `serve` reads a replica (`Config::store_options`).
            read_url: None,
            ..StoreOptions::default()
        }
    }

    /// --database-read-url, or the file named by --database-read-url-file.
    pub fn read_url(&self) -> Option<&SecretUrl> {
        self.database_read_url
            .as_ref()
            .or(self.database_read_url_file.as_ref())
    }

    fn security(&self) -> PgSecurity {
        PgSecurity {
            ssl_mode: self.database_ssl_mode,
            ssl_root_cert: self.database_ssl_root_cert.clone(),
            ssl_cert: self.database_ssl_cert.clone(),
            ssl_key: self.database_ssl_key.clone(),
            password: self
                .database_password_file
                .as_ref()
                .map(|p| p.expose().to_owned()),
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
