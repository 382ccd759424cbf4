//! TLS for the gRPC port: rustls with the `ring` provider, certificates that
//! are renewed on disk served without a restart, and optional client
//! certificates (mTLS).
//!
//! keyward terminates TLS itself instead of through tonic's
//! `ServerTlsConfig`, whose configuration is fixed once the server runs:
//! - [`TlsFiles`] names the PEM files: certificate chain, private key and,
//!   for mTLS, the client CA bundle.
//! - [`ServerTls::load`] reads and checks them into a rustls `ServerConfig`
//!   (ALPN `h2`); any problem is an error naming the file, never showing the
//!   key.
//! - [`reload`] keeps the current `ServerConfig` and re-reads the files every
//!   interval: when their bytes change and load, new connections get the new
//!   certificate, key and client CA; when they do not load, the old ones stay
//!   and a warning is logged.
//! - [`handshake`] runs the server side of one connection's handshake with
//!   a timeout, in that connection's task (the accept loop is `serve`'s, shared
//!   with plaintext), so a client that fails or stalls its handshake never
//!   holds up the next one; probes that send no byte are not failures.

mod contents;
mod handshake;
pub mod pem;
mod reload;

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use contents::Contents;
pub use contents::{TlsFiles, provider};
pub use handshake::handshake;
pub use reload::ReloadingConfig;

/// TLS of a server: the current configuration and how to keep it fresh.
pub struct ServerTls {
    files: TlsFiles,
    reload_interval: Duration,
    config: Arc<ReloadingConfig>,
}

impl ServerTls {
    /// Reads and checks the files; `reload_interval` zero never re-reads them.
    pub fn load(files: TlsFiles, reload_interval: Duration) -> Result<Self> {
        let contents = Contents::read(&files)?;
        let config = contents.server_config(&files)?;
        Ok(Self {
            config: Arc::new(ReloadingConfig::new(config, contents.digest())),
            files,
            reload_interval,
        })
    }

    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    pub fn config(&self) -> Arc<ReloadingConfig> {
        self.config.clone()
    }

    /// Starts re-reading the files every reload interval until `stopping`.
    pub fn spawn_reload(&self, stopping: CancellationToken) {
        if self.reload_interval.is_zero() {
            return;
        }
        tokio::spawn(reload::run(
            self.config.clone(),
            self.files.clone(),
            self.reload_interval,
            stopping,
        ));
    }
}

#[cfg(test)]
pub(crate) mod test_pki {
    //! Certificates made on the spot for the unit tests.
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    pub struct Ca {
        pub pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Ca {
        pub fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Self {
                pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A leaf for 127.0.0.1 and localhost: (certificate PEM, key PEM).
        pub fn leaf(&self, name: &str) -> (String, String) {
            let params =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .unwrap();
            let mut params = params;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{test_pki::Ca, *};

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_a_certificate_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test ca");
        let (cert, key) = ca.leaf("server");
        let files = TlsFiles {
            cert: write(dir.path(), "tls.crt", &cert),
            key: write(dir.path(), "tls.key", &key),
            client_ca: Some(write(dir.path(), "ca.crt", &ca.pem)),
        };
        let tls = ServerTls::load(files, Duration::from_secs(10)).unwrap();
        assert!(tls.mutual());
        assert_eq!(
            tls.config().current().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn bad_files_are_named_and_the_key_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test ca");
        let (cert, key) = ca.leaf("server");
        let (_, other_key) = ca.leaf("other");
        let good_cert = write(dir.path(), "tls.crt", &cert);
        let good_key = write(dir.path(), "tls.key", &key);
        let load = |cert: &PathBuf, key: &PathBuf, ca: Option<&PathBuf>| {
            let files = TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: ca.cloned(),
            };
            format!(
                "{:#}",
                ServerTls::load(files, Duration::ZERO).err().unwrap()
            )
        };

        let missing = dir.path().join("missing.crt");
        let error = load(&missing, &good_key, None);
        assert!(error.contains("missing.crt"), "{error}");

        let error = load(&good_key, &good_key, None);
        assert!(error.contains("no PEM certificate"), "{error}");

        let error = load(&good_cert, &good_cert, None);
        assert!(
            error.contains("no PEM private key") && error.contains("tls.crt"),
            "{error}"
        );

        let mismatched = write(dir.path(), "other.key", &other_key);
        let error = load(&good_cert, &mismatched, None);
        assert!(error.contains("does not belong"), "{error}");
        assert!(!error.contains(other_key.lines().nth(1).unwrap()));

        // A key whose base64 is broken: no part of it may reach the message.
        let body = key.lines().nth(1).unwrap();
        let broken = key.replacen(body, &format!("{body}!!"), 1);
        let broken = write(dir.path(), "broken.key", &broken);
        let error = load(&good_cert, &broken, None);
        assert!(error.contains("broken.key"), "{error}");
        assert!(!error.contains(&body[..16]), "{error}");

        let error = load(&good_cert, &good_key, Some(&good_key));
        assert!(
            error.contains("client CA") && error.contains("tls.key"),
            "{error}"
        );
    }

    #[test]
    fn digest_tells_contents_apart() {
        let a = Contents {
            cert: b"ab".to_vec(),
            key: b"c".to_vec(),
            client_ca: None,
        };
        let b = Contents {
            cert: b"a".to_vec(),
            key: b"bc".to_vec(),
            client_ca: None,
        };
        assert_ne!(a.digest(), b.digest());
    }
}
