//! Configuration of `keyward serve`: every setting is a flag and a
//! `KEYWARD_*` environment variable, with defaults that run on a bare laptop
//! (an SQLite file in the working directory, 127.0.0.1:50051). What does not
//! fit on a command line (ext_authz route rules) lives in an optional TOML
//! file named by `--config`; flags and the file never set the same thing.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::{
    authz,
    cache::{LocalOptions, RedisOptions},
    serve::Limits,
    store::StoreOptions,
    tls::TlsFiles,
};

/// A connection URL that may hold a password: `Debug` shows only its scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.0.split(':').next().unwrap_or("");
        write!(f, "{scheme}:<redacted>")
    }
}

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

    /// Connections in the database pool.
    #[arg(long, env = "KEYWARD_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Bound on every database call but the hot-path read (admin reads and
    /// writes, waiting for a connection); past it the call fails UNAVAILABLE.
    #[arg(long, env = "KEYWARD_DATABASE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub database_timeout: Duration,
}

impl DatabaseArgs {
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_timeout,
        }
    }
}

/// TLS for the gRPC port. All are paths of PEM files, which keyward re-reads
/// while it runs, so renewed certificates need no restart.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Certificate chain (leaf first) to serve gRPC over TLS; needs
    /// --tls-key.
    #[arg(long, env = "KEYWARD_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KEYWARD_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates: when set, clients must present a certificate signed
    /// by one of them (mTLS).
    #[arg(long, env = "KEYWARD_TLS_CLIENT_CA", value_name = "PATH")]
    pub tls_client_ca: Option<PathBuf>,

    /// How often the TLS files are re-read; changed files that load are used
    /// for new connections. 0s never re-reads them.
    #[arg(long, env = "KEYWARD_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tls_reload_interval: Duration,
}

impl TlsArgs {
    /// The files to serve TLS from; `None` is plaintext.
    pub fn files(&self) -> anyhow::Result<Option<TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            })),
            (Some(_), None) => bail!(
                "--tls-cert (KEYWARD_TLS_CERT) needs --tls-key (KEYWARD_TLS_KEY): TLS takes a certificate and its key"
            ),
            (None, Some(_)) => bail!(
                "--tls-key (KEYWARD_TLS_KEY) needs --tls-cert (KEYWARD_TLS_CERT): TLS takes a certificate and its key"
            ),
            (None, None) if self.tls_client_ca.is_some() => bail!(
                "--tls-client-ca (KEYWARD_TLS_CLIENT_CA) needs --tls-cert and --tls-key: client certificates need TLS"
            ),
            (None, None) => Ok(None),
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Address the gRPC server (KeyService, ext_authz, health, reflection)
    /// listens on. Port 0 picks a free port.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: Limits,

    /// Do not migrate the database on start (run `keyward migrate` instead,
    /// e.g. from a deployment hook).
    #[arg(long, env = "KEYWARD_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Most keys kept in the in-process cache (L1); 0 turns it off.
    #[arg(long, env = "KEYWARD_L1_CAPACITY", default_value_t = 1_000_000)]
    pub l1_capacity: u64,

    /// How long L1 keeps a known key. Bounds how long a lost invalidation can
    /// leave a revoked key usable on one replica.
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

    /// Redis URL (`redis://[:password@]host:port[/db]`). When set, Redis is
    /// the shared cache (L2) and the invalidation bus of all replicas.
    #[arg(long, env = "KEYWARD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretUrl>,

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

    /// Address of the HTTP side port serving Prometheus metrics at
    /// `/metrics` (e.g. `0.0.0.0:9090`); unset, no metrics are kept.
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
        let url = self.redis_url.as_ref()?;
        Some(RedisOptions {
            url: url.expose().to_owned(),
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
        assert!(!settings.ext_authz.routes.is_empty());

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
}
