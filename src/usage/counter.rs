//! Calls counted in memory, per key, per minute, per reason, until the next
//! flush takes them. The hot path pays one short lock of one of a few
//! shards and one hash of the cell; nothing is written per call.
//!
//! A cell is the key's record (shared with the caches, so counting a key
//! copies no id or project), the minute and the reason: 24 bytes in the
//! table. With every cached key called between two flushes, the counter is
//! the second-largest holder of memory after the L1, so it is kept flat: one
//! table entry per (key, minute, reason), no allocation of its own per key.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher as _},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::DateTime;
use hashbrown::HashTable;

use crate::{decision::Reason, key::KeyId, record::KeyRecord, store::UsageCount};

const SHARDS: usize = 8;
const MICROS_PER_MINUTE: i64 = 60_000_000;

/// Cells held (key × minute × reason) before new ones are dropped: about
/// 40 MB with the tables' slack. Reached only when flushes keep failing (the
/// store is down for long).
pub const DEFAULT_MAX_MINUTES: usize = 1_000_000;

type Hasher = foldhash::fast::RandomState;

/// One key's calls with one reason in one minute.
struct Cell {
    /// Only `id` and `project` are read: a restored row's record holds just
    /// those.
    record: Arc<KeyRecord>,
    /// Minutes since the Unix epoch (an `i32` lasts until the year 6053).
    minute: i32,
    reason: Reason,
    calls: u32,
}

fn cell_hash(hasher: &Hasher, id: &KeyId, minute: i32, reason: Reason) -> u64 {
    let mut state = hasher.build_hasher();
    id.hash(&mut state);
    state.write_i32(minute);
    state.write_u8(reason as u8);
    state.finish()
}

pub struct UsageCounter {
    shards: Box<[Mutex<HashTable<Cell>>]>,
    hasher: Hasher,
    cells: AtomicUsize,
    max_cells: usize,
}

impl std::fmt::Debug for UsageCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageCounter")
            .field("cells", &self.cells.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for UsageCounter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MINUTES)
    }
}

impl UsageCounter {
    pub fn new(max_cells: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Hasher::default(),
            cells: AtomicUsize::new(0),
            max_cells,
        }
    }

    /// Counts one call of `record`'s key with `reason` at `now_micros`.
    pub fn record(&self, record: &Arc<KeyRecord>, reason: Reason, now_micros: i64) {
        self.add(record, now_micros.div_euclid(MICROS_PER_MINUTE), reason, 1);
    }

    fn add(&self, record: &Arc<KeyRecord>, minute: i64, reason: Reason, calls: u64) {
        let Ok(minute) = i32::try_from(minute) else {
            metrics::counter!("keyward_usage_dropped_calls_total").increment(calls);
            return;
        };
        let hash = cell_hash(&self.hasher, &record.id, minute, reason);
        // The high bits pick the shard; the table uses the low ones.
        let shard = (hash >> 58) as usize % SHARDS;
        let mut table = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let same = |c: &Cell| c.minute == minute && c.reason == reason && c.record.id == record.id;
        // A cell holds at most a minute of one key's calls, far below
        // u32::MAX at any rate keyward serves; saturate rather than wrap.
        let calls32 = u32::try_from(calls).unwrap_or(u32::MAX);
        if let Some(cell) = table.find_mut(hash, same) {
            cell.calls = cell.calls.saturating_add(calls32);
            return;
        }
        if self.cells.fetch_add(1, Ordering::Relaxed) >= self.max_cells {
            self.cells.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("keyward_usage_dropped_calls_total").increment(calls);
            return;
        }
        let hasher = &self.hasher;
        table.insert_unique(
            hash,
            Cell {
                record: record.clone(),
                minute,
                reason,
                calls: calls32,
            },
            |c| cell_hash(hasher, &c.record.id, c.minute, c.reason),
        );
    }

    /// Takes everything counted so far, as rows for the store.
    pub fn take(&self) -> Vec<UsageCount> {
        self.batches(usize::MAX).flatten().collect()
    }

    /// Takes what was counted in batches of about `rows` rows, a shard at a
    /// time as the batches are asked for: a flush of a busy minute holds
    /// one batch's rows and SQL at a time, not all of them (100,000 keys
    /// held all at once lifted the resident size by ~50 MB).
    pub fn batches(&self, rows: usize) -> Batches<'_> {
        Batches {
            counter: self,
            next_shard: 0,
            rows,
        }
    }

    fn take_shard(&self, shard: usize, rows: &mut Vec<UsageCount>) {
        let table = std::mem::take(
            &mut *self.shards[shard]
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.cells.fetch_sub(table.len(), Ordering::Relaxed);
        rows.reserve(table.len());
        for cell in table {
            let Some(minute) = DateTime::from_timestamp(i64::from(cell.minute) * 60, 0) else {
                continue;
            };
            rows.push(UsageCount {
                key_id: cell.record.id.clone(),
                project: cell.record.project.to_string(),
                minute,
                outcome: cell.reason.as_str(),
                calls: i64::from(cell.calls),
            });
        }
    }

    /// Puts back rows a flush could not write, so they go with the next.
    pub fn restore(&self, rows: Vec<UsageCount>) {
        let mut records: HashMap<KeyId, Arc<KeyRecord>> = HashMap::new();
        for row in rows {
            let Some(reason) = Reason::ALL.iter().find(|r| r.as_str() == row.outcome) else {
                continue;
            };
            let record = records
                .entry(row.key_id)
                .or_insert_with_key(|id| Arc::new(KeyRecord::identity(id.clone(), &row.project)))
                .clone();
            self.add(
                &record,
                row.minute.timestamp().div_euclid(60),
                *reason,
                u64::try_from(row.calls).unwrap_or(0),
            );
        }
    }

    /// Cells held (key × minute × reason), for tests and the metrics.
    pub fn minutes_held(&self) -> usize {
        self.cells.load(Ordering::Relaxed)
    }
}

/// See [`UsageCounter::batches`]: whole shards, taken when asked for, so a
/// batch not asked for stays counted.
pub struct Batches<'a> {
    counter: &'a UsageCounter,
    next_shard: usize,
    rows: usize,
}

impl Iterator for Batches<'_> {
    type Item = Vec<UsageCount>;

    fn next(&mut self) -> Option<Vec<UsageCount>> {
        let mut batch = Vec::new();
        while self.next_shard < SHARDS && batch.len() < self.rows {
            self.counter.take_shard(self.next_shard, &mut batch);
            self.next_shard += 1;
        }
        (!batch.is_empty()).then_some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::usage::ALLOWED;

    fn record(project: &str) -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: KeyId::generate(),
            project: project.into(),
            scopes: Arc::from([]),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        })
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
    fn batches_take_whole_shards_only_when_asked_for() {
        let counter = UsageCounter::default();
        for _ in 0..400 {
            counter.record(&record("p"), Reason::Ok, 0);
        }
        let first = counter.batches(100).next().unwrap();
        assert!(first.len() >= 100 && first.len() < 400, "{}", first.len());
        assert_eq!(
            counter.minutes_held(),
            400 - first.len(),
            "what was not asked for stays counted"
        );
        let rest: usize = counter.batches(100).map(|b| b.len()).sum();
        assert_eq!(first.len() + rest, 400);
        assert_eq!(counter.minutes_held(), 0);
        assert!(counter.batches(100).next().is_none());
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
        assert_eq!(counter.minutes_held(), 4);
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
