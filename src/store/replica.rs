//! Hot-path reads from a read replica (`--database-read-url`), and why they
//! cannot bring a revoked key back.
//!
//! A streaming replica replays the primary's WAL some time after the
//! primary committed it. How long is measured, not assumed: every
//! [`SAMPLE_EVERY`] the primary's WAL insert position is read at a time T
//! (every commit that returned before T lies below it), and once the
//! replica's replay position has passed it, the replica is known to show
//! every commit before T. The latest such T is the replica's *watermark* W.
//!
//! A digest is read from the replica only when
//! - the watermark is recent: now − W ≤ the revocation bound (else the
//!   replica may miss any recent write, and the read goes to the primary);
//! - and no change of that digest this replica knows of (its own writes, the
//!   bus, the outbox tail, which reads the primary) is newer than W − margin.
//!
//! So a revoke that committed more than the bound ago is always seen (it is
//! below W), and one this replica has heard of is read from the primary
//! until the replica has replayed it. What this costs the revocation bound:
//! a cached answer is stamped with the time of the read, while the row it
//! holds is as of W, up to the bound older; the revocation margin (how much
//! older than an invalidation a cached answer must be to be refused) grows
//! by the bound when a read URL is set (`Config::revocation_options`).
//!
//! A read server that is not in recovery (a promoted replica, or a primary
//! named as the read URL) has no replay position: reads go to the primary.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use sqlx::{PgPool, Row};

use crate::key::Digest;

/// How often the replica's lag is measured: two one-row queries.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Changed digests remembered at most; past it every read goes to the
/// primary until the replica has caught up with the newest of them.
const CAPACITY: usize = 100_000;

/// Samples of the primary's WAL position awaiting the replica.
const MAX_SAMPLES: usize = 1024;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// `X/Y` (hex halves) as a number.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

pub struct ReplicaReads {
    pool: PgPool,
    /// Every commit before this (µs) is visible on the replica; `i64::MIN`
    /// until measured.
    watermark: Arc<AtomicI64>,
    /// digest → latest change time (µs) this replica knows of, and a floor
    /// below which nothing is trusted when the map overflowed.
    changes: Mutex<(HashMap<Digest, i64>, i64)>,
    max_lag: i64,
    margin: i64,
}

impl ReplicaReads {
    /// Starts measuring `replica` against `primary`; needs a tokio runtime.
    pub fn new(primary: PgPool, replica: PgPool, max_lag: Duration, margin: Duration) -> Self {
        let watermark = Arc::new(AtomicI64::new(i64::MIN));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(measure(primary, replica.clone(), watermark.clone()));
        }
        Self {
            pool: replica,
            watermark,
            changes: Mutex::new((HashMap::new(), i64::MIN)),
            max_lag: micros(max_lag),
            margin: micros(margin),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A digest's row changed at `at` (µs).
    pub fn changed(&self, digest: &Digest, at: i64) {
        let watermark = self.watermark.load(Ordering::Acquire);
        let mut guard = self.lock();
        let (map, floor) = &mut *guard;
        if map.len() >= CAPACITY {
            // The replica has replayed what changed before W − margin.
            map.retain(|_, changed| changed.saturating_add(self.margin) > watermark);
        }
        if map.len() >= CAPACITY {
            *floor = (*floor).max(map.values().copied().max().unwrap_or(at));
            map.clear();
        }
        let latest = map.entry(*digest).or_insert(at);
        *latest = (*latest).max(at);
    }

    /// Splits `digests` into those the replica may answer and those only
    /// the primary may.
    pub fn split(&self, digests: &[Digest]) -> (Vec<Digest>, Vec<Digest>) {
        let watermark = self.watermark.load(Ordering::Acquire);
        if now_micros().saturating_sub(watermark) > self.max_lag {
            metrics::counter!("keyward_db_replica_skipped_total", "why" => "lag")
                .increment(digests.len() as u64);
            return (Vec::new(), digests.to_vec());
        }
        let guard = self.lock();
        let (map, floor) = &*guard;
        let trusted = |changed: i64| changed.saturating_add(self.margin) <= watermark;
        let (replica, primary): (Vec<Digest>, Vec<Digest>) = digests
            .iter()
            .partition(|d| trusted(map.get(*d).copied().unwrap_or(*floor)));
        if !primary.is_empty() {
            metrics::counter!("keyward_db_replica_skipped_total", "why" => "changed")
                .increment(primary.len() as u64);
        }
        (replica, primary)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<Digest, i64>, i64)> {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps the watermark: the time of the newest primary sample the replica
/// has replayed past.
async fn measure(primary: PgPool, replica: PgPool, watermark: Arc<AtomicI64>) {
    let mut samples: VecDeque<(i64, u64)> = VecDeque::new();
    let mut not_standby_logged = false;
    while !primary.is_closed() && !replica.is_closed() {
        match replay_position(&replica).await {
            Ok(Some(replayed)) => {
                not_standby_logged = false;
                while let Some(&(at, lsn)) = samples.front() {
                    if lsn > replayed {
                        break;
                    }
                    watermark.fetch_max(at, Ordering::AcqRel);
                    samples.pop_front();
                }
            }
            Ok(None) if !not_standby_logged => {
                not_standby_logged = true;
                tracing::warn!(
                    "the read replica is not in recovery (promoted, or a primary): hot-path reads go to the primary"
                );
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "cannot read the replica's replay position"),
        }
        // Taken before the query: every commit that returned before `at`
        // lies below the position read after it.
        let at = now_micros();
        match sqlx::raw_sql("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&primary)
            .await
            .and_then(|row| row.try_get::<String, _>(0))
        {
            Ok(text) => {
                if let Some(lsn) = parse_lsn(&text) {
                    if samples.len() >= MAX_SAMPLES {
                        samples.pop_front();
                    }
                    samples.push_back((at, lsn));
                }
            }
            Err(error) => tracing::debug!(%error, "cannot read the primary's WAL position"),
        }
        let lag = now_micros()
            .saturating_sub(watermark.load(Ordering::Acquire))
            .max(0);
        metrics::gauge!("keyward_db_replica_lag_seconds").set(lag as f64 / 1e6);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// The replica's replay position, or `None` when it is not a standby.
async fn replay_position(replica: &PgPool) -> Result<Option<u64>, sqlx::Error> {
    let row = sqlx::raw_sql("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
        .fetch_one(replica)
        .await?;
    let in_recovery: bool = row.try_get(0)?;
    let replayed: Option<String> = row.try_get(1)?;
    Ok(replayed
        .filter(|_| in_recovery)
        .as_deref()
        .and_then(parse_lsn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_compare_as_numbers() {
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B_3748));
        assert!(parse_lsn("1/0").unwrap() > parse_lsn("0/FFFFFFFF").unwrap());
        assert_eq!(parse_lsn("nonsense"), None);
    }

    fn reads(watermark: i64, max_lag: Duration) -> ReplicaReads {
        ReplicaReads {
            pool: sqlx::postgres::PgPoolOptions::new()
                .connect_lazy("postgres://localhost/none")
                .unwrap(),
            watermark: Arc::new(AtomicI64::new(watermark)),
            changes: Mutex::new((HashMap::new(), i64::MIN)),
            max_lag: micros(max_lag),
            margin: micros(Duration::from_secs(1)),
        }
    }

    fn d(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    #[tokio::test]
    async fn a_lagging_replica_answers_nothing() {
        let reads = reads(now_micros() - 5_000_000, Duration::from_secs(1));
        assert_eq!(reads.split(&[d(1), d(2)]), (vec![], vec![d(1), d(2)]));
        let never_measured = super::tests::reads(i64::MIN, Duration::from_secs(1));
        assert_eq!(never_measured.split(&[d(1)]), (vec![], vec![d(1)]));
    }

    #[tokio::test]
    async fn a_digest_changed_after_the_watermark_is_read_from_the_primary() {
        let watermark = now_micros();
        let reads = reads(watermark, Duration::from_secs(1));
        assert_eq!(reads.split(&[d(1)]), (vec![d(1)], vec![]));
        reads.changed(&d(1), watermark - 500_000);
        reads.changed(&d(2), watermark - 2_000_000);
        assert_eq!(
            reads.split(&[d(1), d(2), d(3)]),
            (vec![d(2), d(3)], vec![d(1)]),
            "within the margin of the watermark: primary; long replayed: replica"
        );
    }

    #[tokio::test]
    async fn past_capacity_the_newest_change_becomes_a_floor() {
        let watermark = now_micros();
        let reads = reads(watermark, Duration::from_secs(1));
        for n in 0..CAPACITY {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
            reads.changed(&Digest::from_bytes(bytes), watermark);
        }
        reads.changed(&d(9), watermark - 10_000_000);
        assert_eq!(reads.split(&[d(7)]), (vec![], vec![d(7)]));
    }
}
