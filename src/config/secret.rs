//! Settings that hold secrets: shown redacted, and readable from files.

use std::{fmt, str::FromStr};

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

/// A secret that is not a URL (a password): `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// As [`secret_file`], for a password.
pub(super) fn secret_text_file(path: &str) -> Result<Secret, String> {
    secret_file(path).map(|url| Secret(url.0))
}

/// Reads a secret from a file (a mounted Kubernetes Secret, a Docker
/// secret): once, at start, without the trailing newline editors and
/// `kubectl create secret --from-file` leave. The error names the file,
/// never what is in it.
pub(super) fn secret_file(path: &str) -> Result<SecretUrl, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(SecretUrl(value.to_owned()))
}
