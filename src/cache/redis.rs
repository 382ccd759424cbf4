//! L2: digest → record in Redis, shared by every replica, so a new replica
//! starts warm and the store sees one read per key per TTL across the fleet.
//!
//! Redis is an accelerator, never a dependency: every call has a timeout, and
//! after a failure a breaker skips Redis (a background task reconnects), so
//! lookups fall through to the store at no extra cost.
//!
//! An invalidation writes a short-lived tombstone instead of deleting: a
//! replica that read the store just before the write committed cannot then
//! put the old record back, because fills never overwrite a tombstone. A
//! fill does overwrite an ordinary entry, so a stale one (say, restored from
//! an AOF) loses to the next store read. A tombstone Redis did not take is
//! queued and written when it answers again (`tombstones.rs`).

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use tokio_util::sync::CancellationToken;

use super::{
    breaker::Breaker,
    local::Entry,
    redis_connect::{ConnectError, Connector, Pool, RedisAccess, RedisConn, pool},
    tombstones::Pending,
};
use crate::{
    key::{Digest, KeyId},
    limit::{Limits, Quota, RateLimit},
    record::KeyRecord,
};

#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// See `redis_target.rs` for the schemes.
    pub url: String,
    pub access: RedisAccess,
    /// Prefix of every key and channel, so deployments can share a Redis.
    pub namespace: String,
    /// How long an entry for a known key is answered without the store.
    pub ttl: Duration,
    /// How long "no such key" is remembered.
    pub negative_ttl: Duration,
    /// How long an entry is kept for answering while the store is down.
    pub keep: Duration,
    /// Bound on every Redis call.
    pub timeout: Duration,
    pub pool_size: usize,
    /// How long a tombstone blocks fills after an invalidation; must exceed
    /// the longest store read.
    pub tombstone_ttl: Duration,
}

const TOMBSTONE: &[u8] = b"tomb";
/// How often queued tombstones are tried again.
const TOMBSTONE_RETRY: Duration = Duration::from_millis(100);
/// Most tombstones kept waiting for Redis.
const PENDING_TOMBSTONES: usize = 100_000;

/// Sets the entry unless a tombstone is there: atomically, in one round trip.
const FILL_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

pub struct RedisCache {
    connector: Arc<Connector>,
    pool: Pool,
    /// One multiplexed connection shared by every call, so concurrent calls
    /// are pipelined on it instead of each taking a pooled connection for a
    /// whole round trip (that per-call checkout held L2 hits to a fifth of
    /// the baseline). Taken from the pool; dropped after any failure, so
    /// the next call starts on a fresh one.
    shared: std::sync::Mutex<Option<RedisConn>>,
    options: RedisOptions,
    breaker: Arc<Breaker>,
    fill: redis::Script,
    pending: Pending,
    /// Whether a MOVED/ASK reply was logged already.
    redirected: std::sync::atomic::AtomicBool,
}

/// The stored form: versioned through the key prefix (`…:k1:`).
#[derive(Serialize, Deserialize)]
struct Stored {
    /// Confirmed by the store at (µs since the epoch).
    c: i64,
    r: Option<StoredRecord>,
}

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    id: String,
    p: String,
    s: Vec<String>,
    e: Option<i64>,
    x: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rl: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<Quota>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    n: Vec<ipnet::IpNet>,
}

impl RedisCache {
    pub fn new(options: RedisOptions) -> Result<Self, ConnectError> {
        let connector = Arc::new(Connector::new(
            &options.url,
            options.access.clone(),
            options.timeout,
        )?);
        let pool = pool(connector.clone(), options.pool_size, options.timeout);
        Ok(Self {
            connector,
            pool,
            shared: std::sync::Mutex::new(None),
            options,
            breaker: Breaker::new("redis"),
            fill: redis::Script::new(FILL_SCRIPT),
            pending: Pending::new(PENDING_TOMBSTONES),
            redirected: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// How this cache reaches Redis; the bus connects the same way.
    pub fn connector(&self) -> &Arc<Connector> {
        &self.connector
    }

    fn key(&self, digest: &Digest) -> String {
        format!(
            "{}:k1:{}",
            self.options.namespace,
            hex::encode(digest.as_bytes())
        )
    }

    /// The cached entry, if Redis has a usable one; misses, tombstones and
    /// failures are all `None` (failures also open the breaker).
    pub async fn get(&self, digest: &Digest) -> Option<Entry> {
        if !self.breaker.is_closed() {
            return None;
        }
        let key = self.key(digest);
        let bytes: Option<Vec<u8>> = self
            .call("get", async |conn| {
                redis::cmd("GET").arg(&key).query_async(conn).await
            })
            .await?;
        let bytes = bytes.filter(|b| b.as_slice() != TOMBSTONE)?;
        match decode(&bytes) {
            Some(entry) => Some(entry),
            None => {
                tracing::warn!("unreadable L2 entry ignored");
                None
            }
        }
    }

    /// Stores what the store just said, unless a tombstone forbids it.
    pub async fn fill(&self, digest: &Digest, entry: &Entry) {
        if !self.breaker.is_closed() {
            return;
        }
        let ttl = if entry.record.is_some() {
            self.options.keep.max(self.options.ttl)
        } else {
            self.options.negative_ttl
        };
        let key = self.key(digest);
        let value = encode(entry);
        let script = &self.fill;
        let _: Option<i64> = self
            .call("fill", async |conn| {
                script
                    .key(&key)
                    .arg(&value)
                    .arg(ttl.as_millis() as u64)
                    .arg(TOMBSTONE)
                    .invoke_async(conn)
                    .await
            })
            .await;
    }

    /// Replaces whatever is cached for `digest` with a tombstone; if Redis
    /// does not take it now, it is queued and written once Redis answers.
    pub async fn tombstone(&self, digest: &Digest) {
        if !self.write_tombstone(digest).await {
            self.pending.push(*digest);
        }
    }

    async fn write_tombstone(&self, digest: &Digest) -> bool {
        if !self.breaker.is_closed() {
            return false;
        }
        let key = self.key(digest);
        let ttl = self.options.tombstone_ttl.as_millis() as u64;
        let written: Option<()> = self
            .call("tombstone", async |conn| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(TOMBSTONE)
                    .arg("PX")
                    .arg(ttl)
                    .query_async(conn)
                    .await
            })
            .await;
        written.is_some()
    }

    /// Writes queued tombstones whenever Redis answers, until `stop`.
    pub fn retry_tombstones(self: &Arc<Self>, stop: CancellationToken) {
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(TOMBSTONE_RETRY) => {}
                }
                if cache.pending.is_empty() || !cache.breaker.is_closed() {
                    continue;
                }
                let mut queued = cache.pending.take().into_iter();
                while let Some(digest) = queued.next() {
                    if !cache.write_tombstone(&digest).await {
                        cache
                            .pending
                            .put_back(std::iter::once(digest).chain(queued).collect());
                        break;
                    }
                    metrics::counter!("keyward_tombstones_retried_total").increment(1);
                }
            }
        });
    }

    /// Tombstones waiting for Redis.
    pub fn pending_tombstones(&self) -> usize {
        self.pending.len()
    }

    /// Drops whatever is cached for `digest`.
    pub async fn forget(&self, digest: &Digest) {
        if !self.breaker.is_closed() {
            return;
        }
        let key = self.key(digest);
        let _: Option<i64> = self
            .call("forget", async |conn| {
                redis::cmd("DEL").arg(&key).query_async(conn).await
            })
            .await;
    }

    pub fn ttl(&self) -> Duration {
        self.options.ttl
    }

    /// (connections, idle connections) in the pool, for the metrics.
    pub fn pool_stats(&self) -> (usize, usize) {
        let status = self.pool.status();
        (status.size, status.available)
    }

    pub fn is_up(&self) -> bool {
        self.breaker.is_closed()
    }

    /// Runs one command on a pooled connection within the timeout; a failure
    /// opens the breaker and is `None`. (The shared rate limiter runs its
    /// script through this too: one pool, one breaker per process.)
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        command: impl AsyncFnOnce(&mut RedisConn) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(self.options.timeout, async {
            let mut conn = self.connection().await.map_err(Failure::Other)?;
            command(&mut conn).await.map_err(|e| {
                if is_redirect(&e) {
                    Failure::Redirect
                } else {
                    Failure::Other(e.to_string())
                }
            })
        })
        .await;
        metrics::histogram!("keyward_redis_command_duration_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        let error = match outcome {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(Failure::Redirect)) => {
                self.redirected_once();
                return None;
            }
            Ok(Err(Failure::Other(e))) => e,
            Err(_) => format!("timed out after {:?}", self.options.timeout),
        };
        // A hung or broken connection must not serve the next call.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        metrics::counter!("keyward_redis_errors_total").increment(1);
        let pool = self.pool.clone();
        let timeout = self.options.timeout;
        self.breaker.trip(&error, move || {
            let pool = pool.clone();
            async move {
                // The pool's recycle check (PING; ROLE behind Sentinel)
                // runs on the way out, so a handle is a server that serves.
                let ping = async {
                    let mut conn = pool.get().await.ok()?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut *conn)
                        .await
                        .ok()
                };
                matches!(tokio::time::timeout(timeout, ping).await, Ok(Some(_)))
            }
        });
        None
    }

    /// A MOVED or ASK reached keyward: a `redis://` URL names one node of
    /// a cluster (the cluster client follows redirects itself). Redis is
    /// not down, so the breaker stays closed (tripping it here made
    /// keyward flap down/up several times a second); the call is a miss.
    fn redirected_once(&self) {
        metrics::counter!("keyward_redis_redirects_total").increment(1);
        if !self
            .redirected
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::error!(
                "Redis answered MOVED/ASK: the URL names one node of a Redis Cluster; \
                 use redis+cluster://host:port,host:port (L2 misses until then)"
            );
        }
    }
}

enum Failure {
    Redirect,
    Other(String),
}

fn is_redirect(error: &redis::RedisError) -> bool {
    matches!(
        error.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::Moved | redis::ServerErrorKind::Ask)
    )
}

impl RedisCache {
    /// The shared connection, opened from the pool when there is none.
    async fn connection(&self) -> Result<RedisConn, String> {
        let current = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(conn) = current {
            if !self.connector.is_retired(&conn) {
                return Ok(conn);
            }
            // Sentinel names another master: move there (the pool's recycle
            // check retires the pooled handles the same way).
            self.shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
        }
        let pooled = self.pool.get().await.map_err(|e| e.to_string())?;
        // The clone keeps the connection open after the pooled handle goes
        // back; the pool keeps recycling (PING) its own handles.
        let conn = RedisConn::clone(&pooled);
        let mut slot = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(slot.get_or_insert(conn).clone())
    }
}

fn encode(entry: &Entry) -> Vec<u8> {
    let stored = Stored {
        c: entry.confirmed_at,
        r: entry.record.as_deref().map(|r| StoredRecord {
            id: r.id.to_string(),
            p: r.project.to_string(),
            s: r.scopes.iter().map(|s| s.to_string()).collect(),
            e: r.expires_at.map(|t| t.timestamp_micros()),
            x: r.revoked_at.map(|t| t.timestamp_micros()),
            rl: r.limits.as_ref().and_then(|l| l.rate),
            q: r.limits.as_ref().and_then(|l| l.quota),
            n: r.cidrs.to_vec(),
        }),
    };
    serde_json::to_vec(&stored).expect("records serialise")
}

fn decode(bytes: &[u8]) -> Option<Entry> {
    let stored: Stored = serde_json::from_slice(bytes).ok()?;
    let record = match stored.r {
        None => None,
        Some(r) => Some(Arc::new(KeyRecord {
            id: r.id.parse::<KeyId>().ok()?,
            project: crate::intern::project(&r.p),
            scopes: crate::intern::scopes(r.s),
            expires_at: time(r.e)?,
            revoked_at: time(r.x)?,
            limits: Limits::new(r.rl, r.q),
            cidrs: r.n.into_boxed_slice(),
        })),
    };
    Some(Entry {
        record,
        confirmed_at: stored.c,
        fetched_at: stored.c,
    })
}

/// `Some(None)` for no time, `None` for a time out of range.
fn time(micros: Option<i64>) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
    match micros {
        None => Some(None),
        Some(m) => chrono::DateTime::from_timestamp_micros(m).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let now = chrono::Utc::now();
        let record = KeyRecord {
            id: KeyId::generate(),
            project: "acme".into(),
            scopes: Arc::from([Box::from("orders:*")]),
            expires_at: Some(now),
            revoked_at: None,
            limits: Limits::new(
                Some(RateLimit {
                    limit: 5,
                    period: Duration::from_secs(1),
                    burst: 2,
                }),
                None,
            ),
            cidrs: vec!["10.0.0.0/8".parse().unwrap()].into_boxed_slice(),
        };
        let entry = Entry {
            record: Some(Arc::new(record.clone())),
            confirmed_at: 42,
            fetched_at: 43,
        };
        let back = decode(&encode(&entry)).unwrap();
        assert_eq!(
            back.record.as_deref(),
            Some(&KeyRecord {
                expires_at: Some(
                    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap()
                ),
                ..record
            })
        );
        assert_eq!(back.confirmed_at, 42);
        let negative = decode(&encode(&Entry {
            record: None,
            confirmed_at: 7,
            fetched_at: 7,
        }))
        .unwrap();
        assert!(negative.record.is_none());
        assert!(decode(b"garbage").is_none());
        assert!(decode(TOMBSTONE).is_none());
    }
}
