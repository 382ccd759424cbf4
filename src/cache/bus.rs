//! The invalidation bus: after a write commits, every replica evicts the key
//! from its L1.
//!
//! Redis pub/sub when Redis is configured, Postgres LISTEN/NOTIFY when only
//! Postgres is, in-process otherwise (one replica: local eviction is all).
//! Messages can be lost; a replica that (re)subscribes clears its L1. The
//! bus is for speed only: the outbox tail (`outbox.rs`) is what bounds how
//! long a lost message can matter.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool};
use tokio_util::sync::CancellationToken;

use super::KeyLookup;
pub use super::invalidation::{Invalidation, LocalBus, Publisher};
pub use super::redis_bus::RedisBus;

pub(super) const RETRY: Duration = Duration::from_millis(200);
pub(super) const MAX_RETRY: Duration = Duration::from_secs(2);

pub(super) fn published(kind: &'static str, result: Result<(), String>) {
    if let Err(error) = result {
        metrics::counter!("keyward_bus_publish_errors_total", "bus" => kind).increment(1);
        tracing::warn!(bus = kind, %error, "invalidation not published; other replicas learn it from the outbox");
    }
}

/// Applies a received invalidation and records how late it came.
pub(super) async fn receive(lookup: &KeyLookup, kind: &'static str, payload: &str) {
    let Some(invalidation) = Invalidation::decode(payload) else {
        tracing::warn!(bus = kind, "unreadable invalidation ignored");
        return;
    };
    lookup.apply(&invalidation).await;
    let lag = (chrono::Utc::now().timestamp_micros() - invalidation.at).max(0);
    metrics::histogram!("keyward_revocation_lag_seconds", "bus" => kind).record(lag as f64 / 1e6);
}

pub struct PostgresBus {
    pool: PgPool,
    channel: String,
    timeout: Duration,
}

impl PostgresBus {
    /// Over `pool`, whose server must take writes (a standby can neither
    /// LISTEN nor NOTIFY): `store::writable_pool`, which follows fail-overs.
    pub fn new(pool: PgPool, namespace: &str, timeout: Duration) -> Self {
        Self {
            pool,
            channel: format!("{namespace}_invalidations"),
            timeout,
        }
    }

    /// As [`RedisBus::subscribe`], over LISTEN.
    pub fn subscribe(self: &Arc<Self>, lookup: Arc<KeyLookup>, stop: CancellationToken) {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut retry = RETRY;
            loop {
                let connected =
                    tokio::time::timeout(bus.timeout.max(Duration::from_secs(1)), async {
                        let mut listener = PgListener::connect_with(&bus.pool).await?;
                        listener.listen(&bus.channel).await?;
                        Ok::<_, sqlx::Error>(listener)
                    })
                    .await;
                match connected {
                    Ok(Ok(mut listener)) => {
                        lookup.clear_local();
                        retry = RETRY;
                        tracing::info!(bus = "postgres", "listening for invalidations");
                        loop {
                            tokio::select! {
                                () = stop.cancelled() => return,
                                notification = listener.try_recv() => match notification {
                                    Ok(Some(n)) => receive(&lookup, "postgres", n.payload()).await,
                                    // The connection dropped: start over, so that
                                    // L1 is cleared once we listen again.
                                    Ok(None) | Err(_) => break,
                                },
                            }
                        }
                        tracing::warn!(
                            bus = "postgres",
                            "invalidation listener lost; reconnecting"
                        );
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(bus = "postgres", %error, "cannot listen yet")
                    }
                    Err(_) => tracing::debug!(bus = "postgres", "listening timed out"),
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        });
    }
}

#[async_trait]
impl Publisher for PostgresBus {
    async fn publish(&self, invalidation: Invalidation) {
        let result = tokio::time::timeout(
            self.timeout,
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.channel)
                .bind(invalidation.encode())
                .execute(&self.pool),
        )
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
        published("postgres", result);
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Digest;

    #[test]
    fn invalidations_round_trip() {
        let mut invalidation = Invalidation {
            digest: Digest::from_bytes([0xab; 32]),
            at: 1_700_000_000_123_456,
            created: false,
        };
        assert_eq!(
            Invalidation::decode(&invalidation.encode()),
            Some(invalidation)
        );
        invalidation.created = true;
        assert_eq!(
            Invalidation::decode(&invalidation.encode()),
            Some(invalidation)
        );
        assert_eq!(Invalidation::decode("zz:1"), None);
        assert_eq!(Invalidation::decode("nothing"), None);
    }
}
