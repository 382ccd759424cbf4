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

#[cfg(test)]
mod tests {
    use crate::config::Config;

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
