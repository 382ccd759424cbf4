//! Calls counted in memory, per key, per minute, per reason, until the next
//! flush takes them. The hot path pays one short lock of one of a few
//! shards and a hash of the key id; nothing is written per call.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::DateTime;

use crate::{decision::Reason, key::KeyId, record::KeyRecord, store::UsageCount};

const SHARDS: usize = 8;
const MICROS_PER_MINUTE: i64 = 60_000_000;

/// Minutes held (key × minute) before new ones are dropped: about 100 MB.
/// Reached only when flushes keep failing (the store is down for long).
pub const DEFAULT_MAX_MINUTES: usize = 1_000_000;

type Hasher = foldhash::fast::RandomState;

struct Minute {
    minute: i64,
    calls: [u64; Reason::ALL.len()],
}

struct KeyCounts {
    project: Arc<str>,
    /// Usually one: the current minute. More after a failed flush or at a
    /// minute's turn.
    minutes: Vec<Minute>,
}

pub struct UsageCounter {
    shards: Box<[Mutex<HashMap<KeyId, KeyCounts, Hasher>>]>,
    pick: Hasher,
    minutes: AtomicUsize,
    max_minutes: usize,
}

impl std::fmt::Debug for UsageCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageCounter")
            .field("minutes", &self.minutes.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for UsageCounter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MINUTES)
    }
}

impl UsageCounter {
    pub fn new(max_minutes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            pick: Hasher::default(),
            minutes: AtomicUsize::new(0),
            max_minutes,
        }
    }

    /// Counts one call of `record`'s key with `reason` at `now_micros`.
    pub fn record(&self, record: &KeyRecord, reason: Reason, now_micros: i64) {
        self.add(
            &record.id,
            &record.project,
            now_micros.div_euclid(MICROS_PER_MINUTE),
            reason,
            1,
        );
    }

    fn add(&self, id: &KeyId, project: &Arc<str>, minute: i64, reason: Reason, calls: u64) {
        let shard = (self.pick.hash_one(id) as usize) % SHARDS;
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(counts) = map.get_mut(id) {
            // Newest last: the current minute is found at once.
            if let Some(m) = counts.minutes.iter_mut().rev().find(|m| m.minute == minute) {
                m.calls[reason as usize] += calls;
                return;
            }
        }
        if self.minutes.fetch_add(1, Ordering::Relaxed) >= self.max_minutes {
            self.minutes.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("keyward_usage_dropped_calls_total").increment(calls);
            return;
        }
        let mut m = Minute {
            minute,
            calls: [0; Reason::ALL.len()],
        };
        m.calls[reason as usize] = calls;
        map.entry(id.clone())
            .or_insert_with(|| KeyCounts {
                project: project.clone(),
                minutes: Vec::with_capacity(1),
            })
            .minutes
            .push(m);
    }

    /// Takes everything counted so far, as rows for the store.
    pub fn take(&self) -> Vec<UsageCount> {
        let mut rows = Vec::new();
        for shard in &self.shards {
            let map = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            let mut taken = 0;
            for (id, counts) in map {
                taken += counts.minutes.len();
                let project = counts.project.to_string();
                for m in counts.minutes {
                    let Some(minute) = DateTime::from_timestamp(m.minute * 60, 0) else {
                        continue;
                    };
                    for (reason, &calls) in Reason::ALL.iter().zip(&m.calls) {
                        if calls > 0 {
                            rows.push(UsageCount {
                                key_id: id.clone(),
                                project: project.clone(),
                                minute,
                                outcome: reason.as_str(),
                                calls: i64::try_from(calls).unwrap_or(i64::MAX),
                            });
                        }
                    }
                }
            }
            self.minutes.fetch_sub(taken, Ordering::Relaxed);
        }
        rows
    }

    /// Puts back rows a flush could not write, so they go with the next.
    pub fn restore(&self, rows: Vec<UsageCount>) {
        let mut projects: HashMap<String, Arc<str>> = HashMap::new();
        for row in rows {
            let Some(reason) = Reason::ALL.iter().find(|r| r.as_str() == row.outcome) else {
                continue;
            };
            let project = projects
                .entry(row.project)
                .or_insert_with_key(|p| Arc::from(p.as_str()))
                .clone();
            self.add(
                &row.key_id,
                &project,
                row.minute.timestamp().div_euclid(60),
                *reason,
                u64::try_from(row.calls).unwrap_or(0),
            );
        }
    }

    /// Key-minutes held, for tests and the metrics.
    pub fn minutes_held(&self) -> usize {
        self.minutes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::usage::ALLOWED;

    fn record(project: &str) -> KeyRecord {
        KeyRecord {
            id: KeyId::generate(),
            project: project.into(),
            scopes: Arc::from([]),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        }
    }

    fn sorted(mut rows: Vec<UsageCount>) -> Vec<(String, i64, &'static str, i64)> {
        let mut out: Vec<_> = rows
            .drain(..)
            .map(|r| {
                (
                    r.key_id.to_string(),
                    r.minute.timestamp(),
                    r.outcome,
                    r.calls,
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn counts_per_key_minute_and_reason() {
        let counter = UsageCounter::default();
        let (a, b) = (record("p"), record("q"));
        let minute = 29_000_000 * MICROS_PER_MINUTE;
        for _ in 0..3 {
            counter.record(&a, Reason::Ok, minute + 1);
        }
        counter.record(&a, Reason::RateLimited, minute + 59_000_000);
        counter.record(&a, Reason::Ok, minute + MICROS_PER_MINUTE);
        counter.record(&b, Reason::Revoked, minute);
        assert_eq!(counter.minutes_held(), 3);
        let rows = counter.take();
        assert_eq!(counter.minutes_held(), 0);
        let t = minute / 1_000_000;
        let mut expected = vec![
            (a.id.to_string(), t, "ok", 3),
            (a.id.to_string(), t, "rate_limited", 1),
            (a.id.to_string(), t + 60, "ok", 1),
            (b.id.to_string(), t, "revoked", 1),
        ];
        expected.sort();
        assert_eq!(sorted(rows.clone()), expected);
        assert!(
            rows.iter()
                .all(|r| r.project == if r.key_id == a.id { "p" } else { "q" })
        );
        assert!(counter.take().is_empty());
    }

    #[test]
    fn restored_rows_merge_with_new_counts() {
        let counter = UsageCounter::default();
        let a = record("p");
        counter.record(&a, Reason::Ok, 0);
        let rows = counter.take();
        counter.record(&a, Reason::Ok, 1);
        counter.restore(rows);
        assert_eq!(
            sorted(counter.take()),
            vec![(a.id.to_string(), 0, ALLOWED, 2)]
        );
    }

    #[test]
    fn calls_past_the_bound_are_dropped_not_held() {
        let counter = UsageCounter::new(2);
        let (a, b, c) = (record("p"), record("p"), record("p"));
        counter.record(&a, Reason::Ok, 0);
        counter.record(&b, Reason::Ok, 0);
        counter.record(&c, Reason::Ok, 0);
        // A minute already held still counts.
        counter.record(&a, Reason::Ok, 0);
        assert_eq!(counter.minutes_held(), 2);
        let total: i64 = counter.take().iter().map(|r| r.calls).sum();
        assert_eq!(total, 3);
    }

    #[test]
    fn the_allowed_outcome_is_the_ok_reason() {
        assert_eq!(Reason::Ok.as_str(), ALLOWED);
    }
}
