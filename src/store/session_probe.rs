//! Finds out whether a Postgres URL gives each client connection a server
//! session of its own, which LISTEN/NOTIFY, named prepared statements and the
//! migration lock all need. A transaction-mode pooler (PgBouncer
//! `pool_mode = transaction`) does not: it hands each transaction to any
//! server session. That cannot be read from the wire, but it can be seen:
//! a session LISTENs, another connection NOTIFYs, and only a listener that
//! keeps its server session between statements hears it.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::StoreError;

/// Whether `url` delivered the probe within `wait`. Errors: the database
/// could not be reached or refused the probe (so nothing was learnt).
pub async fn check_session(url: &str, wait: Duration) -> Result<bool, StoreError> {
    // The parse error could echo the URL, password included.
    let options: PgConnectOptions = url
        .parse()
        .map_err(|_| StoreError::Other("invalid postgres URL".to_owned()))?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(wait)
        .connect_with(options.application_name("keyward-probe"))
        .await?;
    let delivered = probe(&pool, wait).await;
    pool.close().await;
    delivered
}

async fn probe(pool: &sqlx::PgPool, wait: Duration) -> Result<bool, StoreError> {
    let channel = format!(
        "keyward_probe_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(&channel).await?;
    // Notified from a listener too: behind a transaction pooler the NOTIFY
    // may run on the very server session that LISTENed, which then hands
    // the notification to the notifier; a listener buffers it where a plain
    // connection would fail on a message it did not expect.
    let mut notifier = PgListener::connect_with(pool).await?;
    // The simple protocol: one exchange, which no pooler can split. The
    // channel is ours (letters, digits, `_`).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("NOTIFY {channel}, 'probe'")))
        .execute(&mut notifier)
        .await?;
    match tokio::time::timeout(wait, listener.recv()).await {
        Ok(Ok(notification)) => Ok(notification.channel() == channel),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Ok(false),
    }
}
