//! TLS settings of the gRPC port.

use std::{path::PathBuf, time::Duration};

use anyhow::bail;

use crate::tls::TlsFiles;

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
