//! Postgres URLs that name several servers, as libpq reads them:
//! `postgres://user@a:5432,b:5433/db?target_session_attrs=read-write`.
//! sqlx connects to one host only, so the list is split here into one set of
//! connect options per host (tried in order by `failover.rs`), and
//! `target_session_attrs` says which server may be used.

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::StoreError;

/// Which server of the list a connection may use (libpq's
/// `target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    /// The first server that accepts the connection.
    Any,
    /// A server that accepts writes (`transaction_read_only` is off).
    ReadWrite,
    /// A server not in recovery (not a standby).
    Primary,
    /// A server in recovery (a standby).
    Standby,
    /// A standby if any is up, else any server.
    PreferStandby,
}

impl SessionAttrs {
    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "any" => Self::Any,
            "read-write" => Self::ReadWrite,
            "primary" => Self::Primary,
            "standby" | "read-only" => Self::Standby,
            "prefer-standby" => Self::PreferStandby,
            other => {
                return Err(StoreError::Other(format!(
                    "target_session_attrs={other:?} is not one of any, read-write, primary, \
                     standby, read-only, prefer-standby"
                )));
            }
        })
    }

    /// Whether a server in this state may carry the connection; for
    /// `PreferStandby` whether it is the preferred kind.
    pub fn accepts(self, in_recovery: bool, read_only: bool) -> bool {
        match self {
            Self::Any => true,
            Self::ReadWrite => !read_only && !in_recovery,
            Self::Primary => !in_recovery,
            Self::Standby | Self::PreferStandby => in_recovery,
        }
    }

    /// Whether writes can go through a connection chosen with these.
    pub fn writable(self) -> bool {
        matches!(self, Self::ReadWrite | Self::Primary)
    }
}

/// TLS and the password, from flags: they apply to every host of every
/// Postgres URL keyward opens, over what the URL says.
#[derive(Debug, Clone, Default)]
pub struct PgSecurity {
    pub ssl_mode: Option<PgSslMode>,
    pub ssl_root_cert: Option<std::path::PathBuf>,
    pub ssl_cert: Option<std::path::PathBuf>,
    pub ssl_key: Option<std::path::PathBuf>,
    /// From `--database-password-file`; never logged.
    pub password: Option<String>,
}

/// A parsed Postgres URL: one set of options per host, in the URL's order.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub hosts: Vec<PgConnectOptions>,
    pub attrs: SessionAttrs,
    /// The URL gave `target_session_attrs` (else `attrs` is the caller's
    /// default).
    pub explicit: bool,
}

impl PgTarget {
    /// Parses `url`; `default` applies when it has no
    /// `target_session_attrs`. Errors never echo the URL: it may hold a
    /// password.
    pub fn parse(
        url: &str,
        default: SessionAttrs,
        security: &PgSecurity,
    ) -> Result<Self, StoreError> {
        let invalid = |why: &str| StoreError::Other(format!("invalid postgres URL: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(s, _)| *s == "postgres" || *s == "postgresql")
            .ok_or_else(|| invalid("it must start with postgres:// or postgresql://"))?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (Some(user), hosts),
            None => (None, authority),
        };
        let (tail, attrs) = take_session_attrs(tail)?;
        let explicit = attrs.is_some();
        let attrs = attrs.unwrap_or(default);
        let mut hosts = Vec::new();
        for host in hostlist.split(',') {
            if host.is_empty() && hostlist.contains(',') {
                return Err(invalid("empty host in the host list"));
            }
            let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
            let single = format!("{scheme}://{user}{host}{tail}");
            let options: PgConnectOptions = single
                .parse()
                .map_err(|_| invalid("it does not parse (check its host, port and parameters)"))?;
            hosts.push(secure(options, security));
        }
        Ok(Self {
            hosts,
            attrs,
            explicit,
        })
    }

    /// `host:port` of each server, for logs (no user, no password).
    pub fn describe(&self, index: usize) -> String {
        let host = &self.hosts[index];
        format!("{}:{}", host.get_host(), host.get_port())
    }
}

fn secure(mut options: PgConnectOptions, security: &PgSecurity) -> PgConnectOptions {
    if let Some(mode) = security.ssl_mode {
        options = options.ssl_mode(mode);
    }
    if let Some(path) = &security.ssl_root_cert {
        options = options.ssl_root_cert(path);
    }
    if let Some(path) = &security.ssl_cert {
        options = options.ssl_client_cert(path);
    }
    if let Some(path) = &security.ssl_key {
        options = options.ssl_client_key(path);
    }
    if let Some(password) = &security.password {
        options = options.password(password);
    }
    options
}

/// Removes `target_session_attrs` from the path-and-query, which sqlx would
/// otherwise ignore with a warning.
fn take_session_attrs(tail: &str) -> Result<(String, Option<SessionAttrs>), StoreError> {
    let Some((path, query)) = tail.split_once('?') else {
        return Ok((tail.to_owned(), None));
    };
    let mut attrs = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("target_session_attrs", value)) => attrs = Some(SessionAttrs::parse(value)?),
            _ => kept.push(pair),
        }
    }
    let tail = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    Ok((tail, attrs))
}

/// `--database-ssl-mode`'s values, as in libpq.
pub fn parse_ssl_mode(text: &str) -> Result<PgSslMode, String> {
    text.parse::<PgSslMode>().map_err(|_| {
        format!(
            "{text:?} is not an sslmode: use disable, allow, prefer, require, verify-ca or \
             verify-full"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<PgTarget, StoreError> {
        PgTarget::parse(url, SessionAttrs::ReadWrite, &PgSecurity::default())
    }

    #[test]
    fn a_host_list_becomes_one_option_set_per_host_in_order() {
        let target =
            parse("postgres://u:p@a:5433,b,[::1]:5435/db?sslmode=disable&target_session_attrs=any")
                .unwrap();
        let hosts: Vec<_> = (0..3).map(|i| target.describe(i)).collect();
        assert_eq!(hosts, ["a:5433", "b:5432", "[::1]:5435"]);
        assert_eq!(target.attrs, SessionAttrs::Any);
        assert!(target.explicit);
        for host in &target.hosts {
            assert_eq!(host.get_username(), "u");
            assert_eq!(host.get_database(), Some("db"));
            assert!(matches!(host.get_ssl_mode(), PgSslMode::Disable));
        }
    }

    #[test]
    fn without_target_session_attrs_the_callers_default_applies() {
        let target = parse("postgresql://a/db").unwrap();
        assert_eq!(target.hosts.len(), 1);
        assert_eq!(target.attrs, SessionAttrs::ReadWrite);
        assert!(!target.explicit);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "mysql://u:secret@a/db",
            "postgres://u:secret@a,,b/db",
            "postgres://u:secret@a:notaport/db",
            "postgres://u:secret@a/db?target_session_attrs=writable",
        ] {
            let error = parse(url).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn flags_override_the_urls_tls_and_password() {
        let security = PgSecurity {
            ssl_mode: Some(PgSslMode::VerifyFull),
            password: Some("from-file".to_owned()),
            ..PgSecurity::default()
        };
        let target = PgTarget::parse(
            "postgres://u:p@a,b/db?sslmode=disable",
            SessionAttrs::Any,
            &security,
        )
        .unwrap();
        for host in &target.hosts {
            assert!(matches!(host.get_ssl_mode(), PgSslMode::VerifyFull));
        }
    }

    #[test]
    fn session_attrs_pick_servers_as_libpq_does() {
        use SessionAttrs::*;
        // (in recovery, read only) for a primary, a read-only primary, a standby.
        let states = [(false, false), (false, true), (true, true)];
        let accepted = |attrs: SessionAttrs| states.map(|(r, o)| attrs.accepts(r, o));
        assert_eq!(accepted(Any), [true, true, true]);
        assert_eq!(accepted(ReadWrite), [true, false, false]);
        assert_eq!(accepted(Primary), [true, true, false]);
        assert_eq!(accepted(Standby), [false, false, true]);
        assert_eq!(accepted(PreferStandby), [false, false, true]);
    }
}
