//! Configuration of `keyward serve`: every setting is a flag and a
//! `KEYWARD_*` environment variable, with defaults that run on a bare laptop
//! (an SQLite file in the working directory, 127.0.0.1:50051). What does not
//! fit on a command line (ext_authz route rules) lives in an optional TOML
//! file named by `--config`; flags and the file never set the same thing.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use serde::Deserialize;

use crate::{authz, cache::LocalOptions, store::StoreOptions};

/// Where the keys live.
#[derive(clap::Args, Clone)]
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
    pub database_url: String,

    /// Connections in the database pool.
    #[arg(long, env = "KEYWARD_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// How long a query waits for a database connection before failing
    /// UNAVAILABLE.
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

/// The URL may hold a password: show only its scheme.
impl fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.database_url.split(':').next().unwrap_or("");
        f.debug_struct("DatabaseArgs")
            .field("database_url", &format_args!("{scheme}:<redacted>"))
            .field("database_max_connections", &self.database_max_connections)
            .field("database_timeout", &self.database_timeout)
            .finish()
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
            config.database.database_url.starts_with("sqlite:")
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
    fn debug_hides_the_database_password() {
        let config = Config::from_args(["--database-url", "postgres://u:hunter2@db/x"]).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres:<redacted>"));
    }
}
