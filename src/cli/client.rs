//! Reaching a keyward server: the channel, the admin key, and turning gRPC
//! statuses into errors a person can read.

use std::{
    fmt,
    io::BufRead,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use tonic::{
    Code, Request, Response, Status,
    metadata::AsciiMetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::{proto::v1::key_service_client::KeyServiceClient, tls::pem};

// Global options are repeated in every subcommand's help; a heading of their
// own keeps them from interleaving with the subcommand's options.
pub(super) const CLIENT_OPTIONS: &str = "Client options";

pub type KeyClient = KeyServiceClient<Channel>;

pub const ADMIN_KEY_ENV: &str = "KEYWARD_ADMIN_KEY";

// Without a bound, a host that drops packets keeps the command waiting for the
// operating system's TCP timeout, which is minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// Kept apart from the other options so that every command takes the same
// server and TLS settings.
#[derive(clap::Args, Debug, Default)]
pub struct ConnectArgs {
    /// URL of the keyward server: http://HOST:PORT, or https://HOST:PORT for
    /// a server with TLS.
    #[arg(
        long,
        global = true,
        help_heading = CLIENT_OPTIONS,
        env = "KEYWARD_SERVER",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub server: String,

    /// CA certificates (PEM) to trust for an https:// server instead of the
    /// system's.
    #[arg(
        long,
        global = true,
        help_heading = CLIENT_OPTIONS,
        env = "KEYWARD_CA_FILE",
        value_name = "PATH"
    )]
    pub ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for a server that requires one (mTLS); needs
    /// --client-key.
    #[arg(
        long,
        global = true,
        help_heading = CLIENT_OPTIONS,
        env = "KEYWARD_CLIENT_CERT",
        value_name = "PATH"
    )]
    pub client_cert: Option<PathBuf>,

    /// Private key (PEM) of --client-cert.
    #[arg(
        long,
        global = true,
        help_heading = CLIENT_OPTIONS,
        env = "KEYWARD_CLIENT_KEY",
        value_name = "PATH"
    )]
    pub client_key: Option<PathBuf>,
}

impl ConnectArgs {
    fn tls_settings(&self) -> Option<&'static str> {
        if self.ca_file.is_some() {
            Some("--ca-file (KEYWARD_CA_FILE)")
        } else if self.client_cert.is_some() {
            Some("--client-cert (KEYWARD_CLIENT_CERT)")
        } else if self.client_key.is_some() {
            Some("--client-key (KEYWARD_CLIENT_KEY)")
        } else {
            None
        }
    }

    /// TLS for an https:// server: the CA file, else the system's roots,
    /// and the client certificate when given.
    fn client_tls(&self) -> Result<ClientTlsConfig> {
        let tls = ClientTlsConfig::new().timeout(CONNECT_TIMEOUT);
        let tls = match &self.ca_file {
            Some(path) => tls.ca_certificate(Certificate::from_pem(pem::read_certificates(
                path, "CA file",
            )?)),
            None => tls.with_native_roots(),
        };
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Ok(tls.identity(Identity::from_pem(
                pem::read_certificates(cert, "client certificate")?,
                pem::read_private_key(key, "client key")?,
            ))),
            (None, None) => Ok(tls),
            (Some(_), None) => {
                bail!("--client-cert (KEYWARD_CLIENT_CERT) needs --client-key (KEYWARD_CLIENT_KEY)")
            }
            (None, Some(_)) => {
                bail!("--client-key (KEYWARD_CLIENT_KEY) needs --client-cert (KEYWARD_CLIENT_CERT)")
            }
        }
    }
}

pub async fn connect(args: &ConnectArgs) -> Result<KeyClient> {
    let server = args.server.as_str();
    // Without a scheme the URI parses, but connecting fails with a cryptic error.
    let Some((scheme, _)) = server.split_once("://") else {
        bail!("server URL {server:?} needs a scheme, e.g. http://{server} or https://{server}");
    };
    let endpoint = Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("invalid server URL {server:?}"))?
        .connect_timeout(CONNECT_TIMEOUT);
    let endpoint = match scheme {
        "https" => endpoint
            .tls_config(args.client_tls()?)
            .with_context(|| format!("cannot set up TLS for {server}"))?,
        // Keys must not travel in clear text to a server the user meant to
        // reach over TLS.
        "http" => match args.tls_settings() {
            Some(setting) => {
                bail!("{setting} is set, but the server URL {server} is not https://")
            }
            None => endpoint,
        },
        _ => bail!("server URL {server:?}: the scheme must be http or https"),
    };
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach keyward at {server}"))?;
    Ok(KeyServiceClient::new(channel))
}

/// The `authorization` header value for admin calls. It is marked sensitive so
/// that tonic and hyper never log it, and its `Debug` hides it as well.
pub struct AdminKey(AsciiMetadataValue);

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

impl AdminKey {
    /// The key from `file` if given, else from `KEYWARD_ADMIN_KEY`. There is
    /// deliberately no flag taking the key itself: argv is visible in `ps`.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::from_sources(file, env_secret(ADMIN_KEY_ENV))
    }

    fn from_sources(file: Option<&Path>, env: Option<String>) -> Result<Self> {
        let key = match (file, env) {
            (Some(path), _) => read_secret(path).context("cannot read the admin key")?,
            (None, Some(key)) => key,
            (None, None) => bail!(
                "this command needs an admin key: set {ADMIN_KEY_ENV} or pass --admin-key-file PATH"
            ),
        };
        // The error must not echo the value: it is the key.
        let mut value = AsciiMetadataValue::try_from(format!("Bearer {key}"))
            .map_err(|_| anyhow!("the admin key contains characters not allowed in a header"))?;
        value.set_sensitive(true);
        Ok(Self(value))
    }

    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        request
    }
}

/// A secret from an environment variable; unset, blank or non-UTF-8 all
/// count as absent.
pub fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().and_then(|v| non_empty(v.trim()))
}

/// The first line of `path` (`-` is stdin), trimmed, so that files written by
/// `echo` or editors work; an empty result is an error, not an empty key.
pub fn read_secret(path: &Path) -> Result<String> {
    let line = if path == Path::new("-") {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read stdin")?;
        line
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        text.lines().next().unwrap_or_default().to_owned()
    };
    non_empty(line.trim()).ok_or_else(|| anyhow!("{}: the first line is empty", path.display()))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

pub trait ResponseExt<T> {
    /// The message, or the status as `CODE: message`.
    fn into_message(self) -> Result<T>;
}

impl<T> ResponseExt<T> for Result<Response<T>, Status> {
    fn into_message(self) -> Result<T> {
        self.map(Response::into_inner).map_err(status_error)
    }
}

pub fn status_error(status: Status) -> anyhow::Error {
    let code = code_name(status.code());
    match status.message() {
        "" => anyhow!("{code}"),
        message => anyhow!("{code}: {message}"),
    }
}

// tonic displays codes as English sentences; the canonical names are what the
// proto comments and gRPC documentation use.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn admin_key_goes_into_a_sensitive_bearer_header() {
        let key = AdminKey::from_sources(None, Some("kw_secret".into())).unwrap();
        let request = key.request(());
        let value = request.metadata().get("authorization").unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer kw_secret");
        assert!(value.is_sensitive());
        assert!(!format!("{key:?}").contains("kw_secret"));
    }

    #[test]
    fn admin_key_file_wins_over_the_environment() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "  from_file  \nsecond line").unwrap();
        let key = AdminKey::from_sources(Some(file.path()), Some("from_env".into())).unwrap();
        let request = key.request(());
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer from_file"
        );
    }

    #[test]
    fn missing_admin_key_names_both_sources() {
        let error = AdminKey::from_sources(None, None).unwrap_err().to_string();
        assert!(error.contains("KEYWARD_ADMIN_KEY"), "{error}");
        assert!(error.contains("--admin-key-file"), "{error}");
    }

    #[test]
    fn bad_admin_key_is_not_echoed() {
        let error = AdminKey::from_sources(None, Some("kw\nXYZZY".into())).unwrap_err();
        assert!(!format!("{error:#}").contains("XYZZY"), "{error:#}");
    }

    #[test]
    fn empty_secret_file_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        assert!(read_secret(file.path()).is_err());
        assert!(read_secret(Path::new("/nonexistent/keyward-key")).is_err());
    }

    #[test]
    fn statuses_read_as_code_and_message() {
        let error = status_error(Status::not_found("no key key_1"));
        assert_eq!(error.to_string(), "NOT_FOUND: no key key_1");
        assert_eq!(
            status_error(Status::unauthenticated("")).to_string(),
            "UNAUTHENTICATED"
        );
    }

    #[tokio::test]
    async fn server_url_needs_a_scheme() {
        let args = ConnectArgs {
            server: "127.0.0.1:50051".into(),
            ..Default::default()
        };
        let error = connect(&args).await.unwrap_err().to_string();
        assert!(error.contains("http://127.0.0.1:50051"), "{error}");
    }

    #[tokio::test]
    async fn unreachable_server_is_named() {
        // Port 1 on loopback: nothing listens there, so the connect is refused.
        let args = ConnectArgs {
            server: "http://127.0.0.1:1".into(),
            ..Default::default()
        };
        let error = connect(&args).await.unwrap_err().to_string();
        assert_eq!(error, "cannot reach keyward at http://127.0.0.1:1");
    }

    #[tokio::test]
    async fn tls_settings_need_an_https_url() {
        let args = ConnectArgs {
            server: "http://127.0.0.1:1".into(),
            ca_file: Some("ca.crt".into()),
            ..Default::default()
        };
        let error = connect(&args).await.unwrap_err().to_string();
        assert!(
            error.contains("--ca-file") && error.contains("https://"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn tls_files_are_checked_and_named() {
        let args = ConnectArgs {
            server: "https://127.0.0.1:1".into(),
            ca_file: Some("/nonexistent/ca.crt".into()),
            ..Default::default()
        };
        let error = format!("{:#}", connect(&args).await.unwrap_err());
        assert!(error.contains("CA file /nonexistent/ca.crt"), "{error}");

        let mut not_pem = tempfile::NamedTempFile::new().unwrap();
        writeln!(not_pem, "hello").unwrap();
        let args = ConnectArgs {
            server: "https://127.0.0.1:1".into(),
            ca_file: Some(not_pem.path().into()),
            ..Default::default()
        };
        let error = format!("{:#}", connect(&args).await.unwrap_err());
        assert!(error.contains("no PEM certificate"), "{error}");

        let args = ConnectArgs {
            server: "https://127.0.0.1:1".into(),
            client_cert: Some(not_pem.path().into()),
            ..Default::default()
        };
        let error = format!("{:#}", connect(&args).await.unwrap_err());
        assert!(error.contains("needs --client-key"), "{error}");
    }
}
