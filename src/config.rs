//! Configuration of `keyward serve`: every setting is a flag and a
//! `KEYWARD_*` environment variable, with defaults that run on a bare laptop
//! (an SQLite file in the working directory, 127.0.0.1:50051). What does not
//! fit on a command line (ext_authz route rules) lives in an optional TOML
//! file named by `--config`; flags and the file never set the same thing.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use serde::Deserialize;

mod check;
mod database;
mod redis_access;
mod secret;
mod tls;

pub use database::DatabaseArgs;
pub use redis_access::RedisAccessArgs;
use secret::secret_file;
pub use secret::{Secret, SecretUrl};
pub use tls::TlsArgs;

use crate::{
    authz,
    cache::{LocalOptions, RedisOptions, RevocationOptions},
    serve::Limits,
};

/// Namespaces name Redis keys and bus channels: keep them plain.
fn namespace(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 48
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err("1 to 48 letters, digits, _ or -".to_owned())
    }
}

fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Address the gRPC server (KeyService, ext_authz, health, reflection)
    /// listens on. Port 0 picks a free port. `[::]:PORT` takes IPv4 and
    /// IPv6 (and IPv4 alone where the host has no IPv6).
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub cors: crate::http::cors::CorsArgs,

    #[command(flatten)]
    pub console: crate::http::console::ConsoleArgs,

    /// Do not migrate the database on start (run `keyward migrate` instead,
    /// e.g. from a deployment hook).
    #[arg(long, env = "KEYWARD_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Most keys kept in the in-process cache (L1); 0 turns it off.
    #[arg(long, env = "KEYWARD_L1_CAPACITY", default_value_t = 1_000_000)]
    pub l1_capacity: u64,

    /// How long L1 keeps a known key without asking the tiers below. A lost
    /// invalidation is bounded by --revocation-bound, not by this.
    #[arg(long, env = "KEYWARD_L1_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub l1_ttl: Duration,

    /// How long L1 remembers that a key does not exist.
    #[arg(long, env = "KEYWARD_L1_NEGATIVE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub l1_negative_ttl: Duration,

    /// Bound on the hot-path database read; past it the lookup counts as the
    /// store being down (see --max-staleness).
    #[arg(long, env = "KEYWARD_LOOKUP_TIMEOUT", default_value = "300ms", value_parser = humantime::parse_duration)]
    pub lookup_timeout: Duration,

    /// While the database is down, known keys confirmed less than this long
    /// ago are still answered from the caches; anything else is UNAVAILABLE.
    #[arg(long, env = "KEYWARD_MAX_STALENESS", default_value = "2m", value_parser = humantime::parse_duration)]
    pub max_staleness: Duration,

    /// Redis URL: `redis://[user:pass@]host:port[/db]`, `rediss://` (TLS),
    /// `redis+sentinel://h:p,h:p/<master>[/db]` (follows Sentinel fail-overs),
    /// `redis+cluster://h:p,h:p` (seed nodes of a Redis Cluster, Redis 7 for
    /// its sharded pub/sub); `rediss+sentinel`, `rediss+cluster` for TLS.
    /// When set, Redis is the shared cache (L2) and the invalidation bus of
    /// all replicas.
    #[arg(long, env = "KEYWARD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretUrl>,

    /// File holding the Redis URL (e.g. a mounted Secret), read once at
    /// start; excludes --redis-url.
    #[arg(
        long,
        env = "KEYWARD_REDIS_URL_FILE",
        value_name = "PATH",
        value_parser = secret_file,
        conflicts_with = "redis_url"
    )]
    pub redis_url_file: Option<SecretUrl>,

    /// Prefix of Redis keys and of the invalidation channel (Redis or
    /// Postgres), so several deployments can share one Redis or database.
    #[arg(long, env = "KEYWARD_NAMESPACE", default_value = "keyward", value_parser = namespace)]
    pub namespace: String,

    /// How long Redis answers for a known key without the database.
    #[arg(long, env = "KEYWARD_REDIS_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub redis_ttl: Duration,

    /// How long Redis remembers that a key does not exist.
    #[arg(long, env = "KEYWARD_REDIS_NEGATIVE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub redis_negative_ttl: Duration,

    /// Bound on every Redis call; past it Redis is skipped until it answers
    /// again.
    #[arg(long, env = "KEYWARD_REDIS_TIMEOUT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,

    /// Connections in the Redis pool.
    #[arg(long, env = "KEYWARD_REDIS_POOL_SIZE", default_value_t = 16)]
    pub redis_pool_size: usize,

    #[command(flatten)]
    pub redis_access: RedisAccessArgs,

    /// After a revoke, rotate or update returns OK, no replica allows what
    /// it forbids after this long, whatever Redis or the bus do: each
    /// replica reads the invalidation outbox every quarter of it, and stops
    /// trusting its caches when it could not for this long.
    #[arg(long, env = "KEYWARD_REVOCATION_BOUND", default_value = "1s", value_parser = positive_duration)]
    pub revocation_bound: Duration,

    /// How far the clocks of any two replicas may disagree. Cached answers
    /// are stamped with one replica's clock and compared with invalidations
    /// stamped by another's; too small a value can let a stale answer
    /// through, too large costs store reads after each write.
    #[arg(long, env = "KEYWARD_CLOCK_SKEW", default_value = "1s", value_parser = humantime::parse_duration)]
    pub clock_skew: Duration,

    /// Address of the HTTP side port serving Prometheus metrics at
    /// `/metrics` (e.g. `[::]:9090`); unset, no metrics are kept.
    #[arg(long, env = "KEYWARD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// How often each replica writes the calls it counted (per key, minute
    /// and outcome) to the database, in one batch. A crash loses at most
    /// this much usage; a shorter interval means more, smaller writes.
    #[arg(long, env = "KEYWARD_USAGE_FLUSH_INTERVAL", default_value = "10s", value_parser = positive_duration)]
    pub usage_flush_interval: Duration,

    /// On SIGTERM, how long in-flight requests may take before the server
    /// exits anyway.
    #[arg(long, env = "KEYWARD_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// TOML config file (ext_authz key sources, route rules, observe mode;
    /// see docs/ext_authz.md). Without it the defaults apply.
    #[arg(long, env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,

    /// JSON file of the public keys leak reports are signed with, in the
    /// shape GitHub publishes them (`{"public_keys": [{"key_identifier",
    /// "key", "is_current"}]}`). When set, `POST /leaks/github` on the main
    /// port takes signed reports and revokes the live keys they name;
    /// unset, that path is 404. Read once at start.
    #[arg(long, env = "KEYWARD_LEAK_REPORT_KEYS", value_name = "PATH")]
    pub leak_report_keys: Option<PathBuf>,
}

/// The config file. Unknown keys are errors, so a typo cannot silently
/// leave a default in place.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub ext_authz: authz::SettingsFile,
}

impl FileConfig {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }
}

/// The checked contents of the config file.
#[derive(Debug, Clone, Default)]
pub struct FileSettings {
    pub ext_authz: authz::Settings,
}

impl FileSettings {
    pub fn from_text(text: &str) -> anyhow::Result<Self> {
        let file = FileConfig::parse(text)?;
        let ext_authz = authz::Settings::from_file(file.ext_authz).map_err(anyhow::Error::msg)?;
        Ok(Self { ext_authz })
    }
}

impl Config {
    /// Reads and checks the config file, or the defaults without one.
    pub fn file_settings(&self) -> anyhow::Result<FileSettings> {
        let Some(path) = &self.config else {
            return Ok(FileSettings::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        FileSettings::from_text(&text)
            .with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn l1_options(&self) -> LocalOptions {
        LocalOptions {
            capacity: self.l1_capacity,
            ttl: self.l1_ttl,
            negative_ttl: self.l1_negative_ttl,
            keep: self.max_staleness,
        }
    }

    pub fn redis_options(&self) -> Option<RedisOptions> {
        let url = self.redis_url.as_ref().or(self.redis_url_file.as_ref())?;
        Some(RedisOptions {
            url: url.expose().to_owned(),
            access: self.redis_access.access(),
            namespace: self.namespace.clone(),
            ttl: self.redis_ttl,
            negative_ttl: self.redis_negative_ttl,
            keep: self.max_staleness,
            timeout: self.redis_timeout,
            pool_size: self.redis_pool_size,
            // Longer than a hot-path read and its fill can take, so a read
            // that started before a write cannot refill what it invalidated.
            tombstone_ttl: ((self.lookup_timeout + self.redis_timeout) * 2)
                .max(Duration::from_secs(1)),
        })
    }

    pub fn revocation_options(&self) -> RevocationOptions {
        RevocationOptions {
            bound: self.revocation_bound,
            // A write that returned OK committed within the database timeout
            // of its time; a read in between saw the old row.
            margin: self.clock_skew + self.database.database_timeout + self.read_lag(),
        }
    }

    /// How far behind the primary a read replica may answer: the revocation
    /// bound, when one is set (`store/replica.rs`); its rows are that much
    /// older than the time a cached answer is stamped with.
    fn read_lag(&self) -> Duration {
        match self.database.read_url() {
            Some(_) => self.revocation_bound,
            None => Duration::ZERO,
        }
    }

    /// The store's options for `serve`: the database flags, and a read
    /// replica bounded by the revocation bound.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        let revocation = self.revocation_options();
        crate::store::StoreOptions {
            read_url: self.database.read_url().map(|u| u.expose().to_owned()),
            read_max_lag: self.revocation_bound,
            read_margin: revocation.margin,
            ..self.database.store_options()
        }
    }

    /// The longest a cached answer can be offered: the Redis TTL, or as a
    /// stale answer while the store is down.
    pub fn longest_cached(&self) -> Duration {
        match self.redis_url {
            Some(_) => self.redis_ttl.max(self.max_staleness),
            None => self.max_staleness,
        }
    }

    /// Parses flags as `keyward serve` would, ignoring the process's
    /// arguments (for tests and embedding).
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        use clap::Parser;
        let args = std::iter::once(std::ffi::OsString::from("keyward"))
            .chain(args.into_iter().map(Into::into));
        Wrapper::try_parse_from(args).map(|w| w.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_on_a_bare_laptop() {
        let config = Config::from_args(Vec::<String>::new()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert!(
            config.database.database_url.expose().starts_with("sqlite:")
                || std::env::var("KEYWARD_DATABASE_URL").is_ok()
        );
        assert_eq!(config.l1_ttl, Duration::from_secs(10));
        if std::env::var_os("KEYWARD_REVOCATION_BOUND").is_none() {
            assert_eq!(config.revocation_bound, Duration::from_secs(1));
            assert_eq!(
                config.revocation_options().interval(),
                Duration::from_millis(250)
            );
        }
    }

    #[test]
    fn the_config_file_is_optional_and_checked() {
        let none = Config::from_args(Vec::<String>::new()).unwrap();
        assert!(none.config.is_none() || std::env::var_os("KEYWARD_CONFIG").is_some());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(
            &path,
            "[ext_authz]\nobserve = true\n[[ext_authz.routes]]\npath_prefix = \"/a\"\nscopes = [\"a:read\"]\n",
        )
        .unwrap();
        let config = Config::from_args(["--config", path.to_str().unwrap()]).unwrap();
        let settings = config.file_settings().unwrap();
        assert!(settings.ext_authz.observe);
        assert!(settings.ext_authz.routes.apply());

        std::fs::write(
            &path,
            "[ext_authz]\n[[ext_authz.routes]]\npath = \"x\"\nscopes = []\n",
        )
        .unwrap();
        let err = format!("{:#}", config.file_settings().unwrap_err());
        assert!(err.contains("invalid config file"), "{err}");
        assert!(err.contains("ext_authz.routes[0]"), "{err}");

        std::fs::write(&path, "[ext_auth]\n").unwrap();
        let err = format!("{:#}", config.file_settings().unwrap_err());
        assert!(err.contains("unknown field `ext_auth`"), "{err}");

        let missing = Config::from_args(["--config", "/nonexistent/keyward.toml"]).unwrap();
        let err = format!("{:#}", missing.file_settings().unwrap_err());
        assert!(err.contains("cannot read config file"), "{err}");
    }

    #[test]
    fn debug_hides_passwords() {
        let config = Config::from_args([
            "--database-url",
            "postgres://u:hunter2@db/x",
            "--redis-url",
            "redis://:hunter2@cache:6379",
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres:<redacted>") && shown.contains("redis:<redacted>"));
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let plain = Config::from_args(Vec::<String>::new()).unwrap();
        if std::env::var_os("KEYWARD_TLS_CERT").is_none() {
            assert_eq!(plain.tls.files().unwrap(), None);
        }
        assert_eq!(plain.tls.tls_reload_interval, Duration::from_secs(10));

        let both = Config::from_args(["--tls-cert", "a.crt", "--tls-key", "a.key"]).unwrap();
        let files = both.tls.files().unwrap().unwrap();
        assert_eq!(files.cert, PathBuf::from("a.crt"));
        assert_eq!(files.key, PathBuf::from("a.key"));

        for args in [
            &["--tls-cert", "a.crt"][..],
            &["--tls-key", "a.key"][..],
            &["--tls-client-ca", "ca.crt"][..],
        ] {
            let config = Config::from_args(args).unwrap();
            let error = config.tls.files().unwrap_err().to_string();
            assert!(
                error.contains(args[0]) && error.contains("KEYWARD_TLS_"),
                "{error}"
            );
        }
    }

    #[test]
    fn namespaces_are_plain() {
        assert!(Config::from_args(["--namespace", "team-a_1"]).is_ok());
        assert!(Config::from_args(["--namespace", "a:b"]).is_err());
        assert!(Config::from_args(["--namespace", ""]).is_err());
    }

    #[test]
    fn the_bus_listens_only_where_a_session_is_kept() {
        let db = |args: &[&str]| {
            let mut all = vec!["--database-url", "postgres://pooler/x"];
            all.extend_from_slice(args);
            Config::from_args(all).unwrap().database
        };
        assert_eq!(db(&[]).session_url(), Some("postgres://pooler/x"));
        assert_eq!(
            db(&["--database-pooler", "session"]).session_url(),
            Some("postgres://pooler/x")
        );
        let transaction = db(&["--database-pooler", "transaction"]);
        assert_eq!(transaction.session_url(), None);
        assert!(!transaction.database_pooler.named_statements());
        let direct = db(&[
            "--database-pooler",
            "transaction",
            "--database-session-url",
            "postgres://direct/x",
        ]);
        assert_eq!(direct.session_url(), Some("postgres://direct/x"));
        assert_eq!(
            direct.store_options().session_url.as_deref(),
            Some("postgres://direct/x")
        );
        assert!(Config::from_args(["--database-pooler", "statement"]).is_err());
    }

    /// `--*-url-file` flags (see `secret.rs`): read, trimmed, never shown.
    #[test]
    fn urls_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "postgres://u:hunter2@db/x\r\n").unwrap();
        let path = path.to_str().unwrap();
        let config =
            Config::from_args(["--database-url-file", path, "--redis-url-file", path]).unwrap();
        assert_eq!(config.database.url().expose(), "postgres://u:hunter2@db/x");
        assert_eq!(
            config.redis_options().unwrap().url,
            "postgres://u:hunter2@db/x"
        );
        assert!(!format!("{config:?}").contains("hunter2"));

        let both =
            Config::from_args(["--database-url", "sqlite:x.db", "--database-url-file", path]);
        assert!(both.is_err());
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let empty = dir.path().join("empty");
        let error =
            Config::from_args(["--database-url-file", empty.to_str().unwrap()]).unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}
