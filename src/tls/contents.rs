//! The TLS files and what is read from them: the bytes as of one read, and
//! the rustls `ServerConfig` they make. Below the server's TLS and the
//! reload, which both build configurations from them.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls::{
    RootCertStore, ServerConfig,
    crypto::{CryptoProvider, ring},
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::{CertifiedKey, SingleCertAndKey},
};

use super::pem;

/// The files TLS is served from. They are read at start and, while the
/// server runs, every reload interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate
    /// signed by one of them.
    pub client_ca: Option<PathBuf>,
}

/// The one crypto provider keyward uses, so that no process-wide default
/// needs installing.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The bytes of the TLS files as read at one time.
pub(crate) struct Contents {
    pub(super) cert: Vec<u8>,
    pub(super) key: Vec<u8>,
    pub(super) client_ca: Option<Vec<u8>>,
}

impl Contents {
    pub(crate) fn read(files: &TlsFiles) -> Result<Self> {
        Ok(Self {
            cert: pem::read(&files.cert, pem::CERT)?,
            key: pem::read(&files.key, pem::KEY)?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|path| pem::read(path, pem::CLIENT_CA))
                .transpose()?,
        })
    }

    /// What tells one set of files from another: the reload swaps only when
    /// it changes. (A digest, so the key's PEM is not kept in memory.)
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            let part = part.map_or(&[][..], Vec::as_slice);
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    pub(crate) fn server_config(&self, files: &TlsFiles) -> Result<Arc<ServerConfig>> {
        let provider = provider();
        let certified = certified_key(self, files, &provider)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("the TLS provider supports no protocol version")?;
        let builder = match (&self.client_ca, &files.client_ca) {
            (Some(bytes), Some(path)) => {
                builder.with_client_cert_verifier(client_verifier(bytes, path, provider)?)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        // h2 first: gRPC is HTTP/2 only, and tonic clients refuse a server
        // that does not select it. HTTP/1.1 for the HTTP endpoints' clients
        // (gateways' forward auth, browsers, curl --http1.1).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certified_key(
    contents: &Contents,
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey> {
    let chain = pem::certificates(&contents.cert, &files.cert, pem::CERT)?;
    let key = pem::private_key(&contents.key, &files.key, pem::KEY)?;
    let key = provider.key_provider.load_private_key(key).map_err(|_| {
        anyhow::anyhow!(
            "{} {}: the key is malformed or of an unsupported type (RSA, ECDSA P-256/P-384 or Ed25519 are)",
            pem::KEY,
            files.key.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(tokio_rustls::rustls::Error::InconsistentKeys(
            tokio_rustls::rustls::InconsistentKeys::Unknown,
        )) => Ok(certified),
        Err(tokio_rustls::rustls::Error::InconsistentKeys(_)) => Err(anyhow::anyhow!(
            "{} {} does not belong to the {} {} (the first certificate)",
            pem::KEY,
            files.key.display(),
            pem::CERT,
            files.cert.display()
        )),
        Err(error) => Err(anyhow::anyhow!(
            "{} {}: the first certificate is malformed: {error}",
            pem::CERT,
            files.cert.display()
        )),
    }
}

fn client_verifier(
    bytes: &[u8],
    path: &std::path::Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for (n, cert) in pem::certificates(bytes, path, pem::CLIENT_CA)?
        .into_iter()
        .enumerate()
    {
        roots.add(cert).with_context(|| {
            format!(
                "{} {}: certificate {} is not a usable CA certificate",
                pem::CLIENT_CA,
                path.display(),
                n + 1
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .with_context(|| format!("{} {}: unusable", pem::CLIENT_CA, path.display()))
}
