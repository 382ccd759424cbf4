//! The invalidation bus on a Redis Cluster: sharded pub/sub (Redis 7:
//! SSUBSCRIBE, SPUBLISH), so one shard carries the channel instead of the
//! cluster bus copying every message to every node.
//!
//! The cluster client (RESP3) delivers messages as pushes, resubscribes
//! after a reconnect, and routes SSUBSCRIBE to the slot's current owner.
//! When the server drops the subscription (its slot moved, its master
//! failed over) keyward subscribes again; every time a subscription is
//! (re)confirmed after a loss, L1 is cleared, since messages sent in
//! between are lost. The outbox tail bounds what a lost message costs.

use std::{sync::Arc, time::Duration};

use redis::{PushInfo, PushKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    KeyLookup,
    bus::{MAX_RETRY, RETRY, receive},
    redis_connect::Connector,
};

/// How often the subscription is renewed even without a loss seen: a
/// subscription whose node died quietly is re-made on the slot's new owner.
const RENEW: Duration = Duration::from_secs(1);

pub fn subscribe(
    connector: Arc<Connector>,
    channel: String,
    timeout: Duration,
    lookup: Arc<KeyLookup>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut retry = RETRY;
        loop {
            let (push, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
            let connected = tokio::time::timeout(timeout.max(Duration::from_secs(1)), async {
                let client = connector.cluster_with_pushes(push)?;
                let mut conn = client.get_async_connection().await?;
                conn.ssubscribe(&channel).await?;
                Ok::<_, redis::RedisError>(conn)
            })
            .await;
            match connected {
                Ok(Ok(mut conn)) => {
                    lookup.clear_local();
                    retry = RETRY;
                    tracing::info!(bus = "redis", "subscribed to sharded invalidations");
                    let mut lost = false;
                    let mut renew = tokio::time::interval(RENEW);
                    renew.tick().await;
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            push = pushes.recv() => match push {
                                Some(push) => handle(&lookup, push, &mut lost).await,
                                None => break,
                            },
                            _ = renew.tick() => {
                                let renewed = tokio::time::timeout(timeout.max(Duration::from_millis(500)), conn.ssubscribe(&channel)).await;
                                if !matches!(renewed, Ok(Ok(()))) {
                                    lost = true;
                                }
                            }
                        }
                    }
                    tracing::warn!(bus = "redis", "sharded subscription lost; reconnecting");
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
            retry = (retry * 2).min(MAX_RETRY);
        }
    });
}

async fn handle(lookup: &KeyLookup, push: PushInfo, lost: &mut bool) {
    match push.kind {
        PushKind::SMessage => {
            // [channel, payload]
            if let Some(payload) = push.data.get(1)
                && let Ok(payload) = redis::from_redis_value_ref::<String>(payload)
            {
                receive(lookup, "redis", &payload).await;
            }
        }
        PushKind::Disconnection | PushKind::SUnsubscribe => *lost = true,
        PushKind::SSubscribe if *lost => {
            *lost = false;
            lookup.clear_local();
            tracing::info!(bus = "redis", "sharded subscription renewed");
        }
        _ => {}
    }
}
