//! The invalidation bus over Redis pub/sub: PUBLISH and SUBSCRIBE on one
//! server or on the master Sentinel names; SPUBLISH and SSUBSCRIBE on a
//! Cluster (`sharded_bus.rs`).
//!
//! Behind Sentinel the subscriber resubscribes as soon as the sentinels
//! name another master (`sentinel_watch.rs`): a subscription left on a
//! demoted or partitioned master may hear nothing, without any error.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{
    KeyLookup,
    bus::{MAX_RETRY, RETRY, published, receive},
    invalidation::{Invalidation, Publisher},
    redis_connect::{Connector, Pool, pool},
    sharded_bus,
};

/// How often a subscriber behind Sentinel looks whether the master changed
/// (an atomic load; the sentinels are asked by `Connector::watch_master`).
const MASTER_RECHECK: Duration = Duration::from_millis(100);

pub struct RedisBus {
    connector: Arc<Connector>,
    publisher: Pool,
    channel: String,
    timeout: Duration,
}

impl RedisBus {
    /// Over `connector`, the one the L2 uses (same target, same access).
    pub fn new(connector: Arc<Connector>, namespace: &str, timeout: Duration) -> Self {
        Self {
            publisher: pool(connector.clone(), 4, timeout),
            connector,
            channel: format!("{namespace}:invalidations"),
            timeout,
        }
    }

    /// Subscribes, clears L1 once subscribed, and evicts on every message;
    /// reconnects with backoff until `stop`.
    pub fn subscribe(self: &Arc<Self>, lookup: Arc<KeyLookup>, stop: CancellationToken) {
        if self.connector.target().is_cluster() {
            sharded_bus::subscribe(
                self.connector.clone(),
                self.channel.clone(),
                self.timeout,
                lookup,
                stop,
            );
            return;
        }
        let bus = self.clone();
        tokio::spawn(async move {
            let mut retry = RETRY;
            loop {
                let connected =
                    tokio::time::timeout(bus.timeout.max(Duration::from_secs(1)), async {
                        let client = bus.connector.server().await?;
                        let generation = bus.connector.master_generation();
                        let mut pubsub = client.get_async_pubsub().await?;
                        pubsub.subscribe(&bus.channel).await?;
                        let at = client.get_connection_info().addr().to_string();
                        Ok::<_, redis::RedisError>((pubsub, at, generation))
                    })
                    .await;
                match connected {
                    Ok(Ok((pubsub, at, generation))) => {
                        // Whatever was published while we were away is lost.
                        lookup.clear_local();
                        retry = RETRY;
                        tracing::info!(bus = "redis", server = %at, "subscribed to invalidations");
                        let mut messages = pubsub.into_on_message();
                        let mut recheck = tokio::time::interval(MASTER_RECHECK);
                        recheck.tick().await;
                        loop {
                            tokio::select! {
                                () = stop.cancelled() => return,
                                message = messages.next() => match message {
                                    Some(message) => {
                                        if let Ok(payload) = message.get_payload::<String>() {
                                            receive(&lookup, "redis", &payload).await;
                                        }
                                    }
                                    None => break,
                                },
                                _ = recheck.tick() => {
                                    if bus.connector.master_generation() != generation {
                                        tracing::info!(bus = "redis", "Sentinel names another master; resubscribing there");
                                        retry = Duration::ZERO;
                                        break;
                                    }
                                }
                            }
                        }
                        tracing::warn!(
                            bus = "redis",
                            "invalidation subscription lost; reconnecting"
                        );
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(bus = "redis", %error, "cannot subscribe yet")
                    }
                    Err(_) => tracing::debug!(bus = "redis", "subscribing timed out"),
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).clamp(RETRY, MAX_RETRY);
            }
        });
    }
}

#[async_trait]
impl Publisher for RedisBus {
    async fn publish(&self, invalidation: Invalidation) {
        // On a cluster, a sharded channel: one shard carries it, rather than
        // every node of the cluster bus.
        let command = if self.connector.target().is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let result = tokio::time::timeout(self.timeout, async {
            let mut conn = self.publisher.get().await.map_err(|e| e.to_string())?;
            redis::cmd(command)
                .arg(&self.channel)
                .arg(invalidation.encode())
                .query_async::<i64>(&mut *conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()));
        published("redis", result.map(|_| ()));
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
