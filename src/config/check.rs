//! `keyward config check`: what `serve` would refuse, found without
//! starting anything.

use anyhow::{Context, bail};

use super::Config;

impl Config {
    /// What `keyward config check` does: every check `serve` makes before it
    /// opens anything, and a one-line summary (no secrets) when all pass.
    pub fn check(&self) -> anyhow::Result<String> {
        self.file_settings()?;
        let tls = match self.tls.files()? {
            None => "off",
            Some(files) => {
                for (what, path) in [
                    ("--tls-cert", Some(&files.cert)),
                    ("--tls-key", Some(&files.key)),
                    ("--tls-client-ca", files.client_ca.as_ref()),
                ] {
                    if let Some(path) = path {
                        std::fs::metadata(path)
                            .with_context(|| format!("{what} {}", path.display()))?;
                    }
                }
                if files.client_ca.is_some() {
                    "mTLS"
                } else {
                    "on"
                }
            }
        };
        let url = self.database.url().expose();
        let database = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            "postgres"
        } else if url.starts_with("sqlite:") {
            "sqlite"
        } else {
            bail!("the database URL is neither postgres://… nor sqlite:PATH");
        };
        if database == "postgres" {
            self.check_postgres()?;
        } else if self.database.read_url().is_some() {
            bail!("--database-read-url needs a Postgres --database-url");
        }
        let redis = match self.redis_options() {
            Some(options) => {
                // Builds the clients, connects nothing; errors quote no URL.
                let connector = crate::cache::redis_connect::Connector::new(
                    &options.url,
                    options.access,
                    options.timeout,
                )
                .context("--redis-url")?;
                format!("on ({})", connector.target().describe())
            }
            None => "off".to_owned(),
        };
        let leaks = match &self.leak_report_keys {
            Some(path) => format!(
                ", leak reports {} keys",
                crate::http::leaks::keys::TrustedKeys::load(path)?.len()
            ),
            None => String::new(),
        };
        let file = match &self.config {
            Some(path) => format!(", config file {}", path.display()),
            None => String::new(),
        };
        Ok(format!(
            "config OK: listen {}, database {database}, redis {redis}, tls {tls}, metrics {}{leaks}{file}",
            self.listen,
            self.metrics_listen
                .map_or_else(|| "off".to_owned(), |a| a.to_string()),
        ))
    }

    /// The Postgres URLs parse (host lists, target_session_attrs) and the
    /// TLS files exist; nothing is connected.
    fn check_postgres(&self) -> anyhow::Result<()> {
        use crate::store::{PgTarget, SessionAttrs};
        let options = self.store_options();
        let database = &self.database;
        let mut urls = vec![("--database-url", database.url(), SessionAttrs::ReadWrite)];
        if let Some(url) = database.session_url_setting() {
            urls.push(("--database-session-url", url, SessionAttrs::ReadWrite));
        }
        if let Some(url) = database.read_url() {
            urls.push(("--database-read-url", url, SessionAttrs::PreferStandby));
        }
        for (flag, url, default) in urls {
            PgTarget::parse(url.expose(), default, &options.security)
                .with_context(|| flag.to_owned())?;
        }
        for (flag, path) in [
            ("--database-ssl-root-cert", &database.database_ssl_root_cert),
            ("--database-ssl-cert", &database.database_ssl_cert),
            ("--database-ssl-key", &database.database_ssl_key),
        ] {
            if let Some(path) = path {
                std::fs::metadata(path).with_context(|| format!("{flag} {}", path.display()))?;
            }
        }
        Ok(())
    }
}
