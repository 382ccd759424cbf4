//! Finds out whether a Postgres URL gives each client connection a server
//! session of its own, which LISTEN/NOTIFY, named prepared statements and the
//! migration lock all need. A transaction-mode pooler (PgBouncer
//! `pool_mode = transaction`) does not: it hands each transaction to any
//! server session. That cannot be read from the wire, but it can be seen:
//! a session LISTENs, another connection NOTIFYs, and only a listener that
//! keeps its server session between statements hears it.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::{StoreError, StoreOptions};

/// Whether `url` delivered the probe within `wait`. Errors: the database
/// could not be reached or refused the probe (so nothing was learnt). A URL
/// with several hosts is probed on the one that takes writes.
pub async fn check_session(
    url: &str,
    wait: Duration,
    options: &StoreOptions,
) -> Result<bool, StoreError> {
    let options = StoreOptions {
        acquire_timeout: wait,
        ..options.clone()
    };
    let pool = super::writable_pool(url, &options, 2, "keyward-probe")?;
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
