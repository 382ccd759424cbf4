//! Reading PEM files with errors that name the file and never show a key.
//! Shared by the server and the `keyward keys` client.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer,
    pem::{self, PemObject},
};

/// What a file is for, as error messages call it.
pub const CERT: &str = "TLS certificate";
pub const KEY: &str = "TLS private key";
pub const CLIENT_CA: &str = "TLS client CA";

/// Files larger than this are not PEM certificates or keys.
const MAX_BYTES: u64 = 1 << 20;

pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    let read = || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = read().with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > MAX_BYTES {
        bail!("{what} {}: larger than 1 MiB", path.display());
    }
    Ok(bytes)
}

/// Every certificate in `bytes`, in order; none is an error.
pub fn certificates(bytes: &[u8], path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow!("{what} {}: not valid PEM: {error}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{what} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        );
    }
    Ok(certs)
}

/// The first private key in `bytes`. Errors say what is wrong, never what
/// the file holds: the details of a PEM error may quote it.
pub fn private_key(bytes: &[u8], path: &Path, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|error| match error {
        pem::Error::NoItemsFound => anyhow!(
            "{what} {}: no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in it",
            path.display()
        ),
        _ => anyhow!("{what} {}: not valid PEM", path.display()),
    })
}

/// Reads `path` and checks that it holds at least one certificate.
pub fn read_certificates(path: &Path, what: &str) -> Result<Vec<u8>> {
    let bytes = read(path, what)?;
    certificates(&bytes, path, what)?;
    Ok(bytes)
}

/// Reads `path` and checks that it holds a private key.
pub fn read_private_key(path: &Path, what: &str) -> Result<Vec<u8>> {
    let bytes = read(path, what)?;
    private_key(&bytes, path, what)?;
    Ok(bytes)
}
