//! The one Redis check at start. Redis is an accelerator, so one that is
//! down or unreachable is no reason not to start; but a certificate keyward
//! cannot trust, credentials Redis refuses, a master name the sentinels do
//! not know, or a `redis://` URL naming one node of a cluster never get
//! better on their own: keyward refuses to
//! start and says which setting is wrong.

use std::time::Duration;

use super::redis_connect::{Connector, RedisConn};
use super::redis_target::Topology;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "Redis's TLS certificate is not trusted ({0}): is --redis-tls-ca the CA that signed it, and is the URL's host a name in it?"
    )]
    Certificate(String),
    #[error(
        "Redis wants a client certificate it trusts ({0}): set --redis-tls-cert and --redis-tls-key"
    )]
    ClientCertificate(String),
    #[error(
        "Redis refused keyward's credentials ({0}): check --redis-username and --redis-password-file"
    )]
    Credentials(String),
    #[error(
        "the Redis URL names one node of a Redis Cluster: use redis+cluster://host:port,host:port"
    )]
    ClusterNode,
    #[error("the sentinels know no master of the name in the redis+sentinel URL ({0})")]
    UnknownMaster(String),
}

/// Least time given to the first connection, however short --redis-timeout is.
const FIRST_CONNECT: Duration = Duration::from_secs(2);

pub async fn preflight(connector: &Connector, timeout: Duration) -> Result<(), PreflightError> {
    let opened = tokio::time::timeout(timeout.max(FIRST_CONNECT), connector.open()).await;
    let mut conn = match opened {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return classify(&error),
        Err(_) => {
            tracing::warn!(redis = %connector.target().describe(), "Redis does not answer yet; starting without it");
            return Ok(());
        }
    };
    let single = matches!(
        connector.target().topology,
        Topology::Single { .. } | Topology::Unix { .. }
    );
    if single && matches!(conn, RedisConn::Server(..)) {
        let info: Result<String, _> = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut conn)
            .await;
        if info.is_ok_and(|i| i.contains("cluster_enabled:1")) {
            return Err(PreflightError::ClusterNode);
        }
    }
    Ok(())
}

fn classify(error: &redis::RedisError) -> Result<(), PreflightError> {
    let text = error.to_string();
    let credentials = matches!(error.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
    if credentials {
        return Err(PreflightError::Credentials(text));
    }
    if matches!(error.kind(), redis::ErrorKind::MasterNameNotFoundBySentinel) {
        return Err(PreflightError::UnknownMaster(text));
    }
    let lower = text.to_ascii_lowercase();
    // TLS 1.3 clients learn that the server wanted a certificate only when
    // its alert arrives, after the handshake: on the first reply.
    if lower.contains("certificaterequired") || lower.contains("certificate required") {
        return Err(PreflightError::ClientCertificate(text));
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return Err(PreflightError::Certificate(text));
    }
    tracing::warn!(error = %text, "Redis cannot be reached yet; starting without it");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    #[test]
    fn only_settings_that_cannot_heal_refuse_the_start() {
        let auth = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(matches!(
            classify(&auth),
            Err(PreflightError::Credentials(_))
        ));
        let tls = RedisError::from((ErrorKind::Io, "invalid peer certificate: UnknownIssuer"));
        assert!(matches!(
            classify(&tls),
            Err(PreflightError::Certificate(_))
        ));
        let mtls = RedisError::from((ErrorKind::Io, "received fatal alert: CertificateRequired"));
        assert!(matches!(
            classify(&mtls),
            Err(PreflightError::ClientCertificate(_))
        ));
        let unknown = RedisError::from((ErrorKind::MasterNameNotFoundBySentinel, "no master"));
        assert!(matches!(
            classify(&unknown),
            Err(PreflightError::UnknownMaster(_))
        ));
        let down = RedisError::from((ErrorKind::Io, "Connection refused"));
        assert!(classify(&down).is_ok());
        let busy = RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        assert!(classify(&busy).is_ok());
    }
}
