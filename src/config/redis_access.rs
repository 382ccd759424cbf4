//! How keyward authenticates to Redis and checks its certificate: an ACL
//! user, a password from a file (so the URL holds none), and TLS files.
//! Files are read once, at start; errors name the file, never its contents.

use std::path::PathBuf;

use crate::cache::RedisAccess;

use super::secret::{Secret, secret_text_file};

/// A PEM file read at start.
#[derive(Clone)]
pub struct PemFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

fn pem_file(path: &str) -> Result<PemFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("{path} is not a PEM file"));
    }
    Ok(PemFile {
        path: path.into(),
        bytes,
    })
}

#[derive(clap::Args, Clone, Debug)]
pub struct RedisAccessArgs {
    /// Redis ACL user (AUTH user password); over a user in --redis-url.
    #[arg(long, env = "KEYWARD_REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// File holding the Redis password (e.g. a mounted Secret), read once at
    /// start; over a password in --redis-url, so the URL holds none.
    #[arg(
        long,
        env = "KEYWARD_REDIS_PASSWORD_FILE",
        value_name = "PATH",
        value_parser = secret_text_file
    )]
    pub redis_password_file: Option<Secret>,

    /// PEM file of the CA(s) the Redis servers' certificates must chain to
    /// (rediss:// URLs); unset: the system's roots. The host in the URL
    /// must be a name in the certificate.
    #[arg(long, env = "KEYWARD_REDIS_TLS_CA", value_name = "PATH", value_parser = pem_file)]
    pub redis_tls_ca: Option<PemFile>,

    /// PEM client certificate, for a Redis that asks for one
    /// (tls-auth-clients); with --redis-tls-key.
    #[arg(
        long,
        env = "KEYWARD_REDIS_TLS_CERT",
        value_name = "PATH",
        value_parser = pem_file,
        requires = "redis_tls_key"
    )]
    pub redis_tls_cert: Option<PemFile>,

    /// PEM private key of --redis-tls-cert (a mounted Secret).
    #[arg(
        long,
        env = "KEYWARD_REDIS_TLS_KEY",
        value_name = "PATH",
        value_parser = pem_file,
        requires = "redis_tls_cert"
    )]
    pub redis_tls_key: Option<PemFile>,
}

impl RedisAccessArgs {
    pub fn access(&self) -> RedisAccess {
        RedisAccess {
            username: self.redis_username.clone(),
            password: self
                .redis_password_file
                .as_ref()
                .map(|p| p.expose().to_owned()),
            ca: self.redis_tls_ca.as_ref().map(|f| f.bytes.clone()),
            client: self
                .redis_tls_cert
                .as_ref()
                .zip(self.redis_tls_key.as_ref())
                .map(|(c, k)| (c.bytes.clone(), k.bytes.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(pem_file(good.to_str().unwrap()).is_ok());
        let bad = dir.path().join("key");
        std::fs::write(&bad, "hunter2").unwrap();
        let error = pem_file(bad.to_str().unwrap()).unwrap_err();
        assert!(error.contains("not a PEM file") && !error.contains("hunter2"));
        assert!(
            pem_file("/nonexistent/ca.pem")
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
