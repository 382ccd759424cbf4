//! A bounded map with per-entry expiry and CLOCK (second-chance) eviction,
//! sharded for concurrent readers.
//!
//! Why not moka: its per-entry bookkeeping (deques, frequency sketch, timer
//! wheel nodes, one allocation per entry) cost 431 bytes per cached key,
//! against a 300-byte budget for key *and* record (issue 18). Here an entry
//! is its slot in a dense `Vec` plus a 4-byte index in a hashbrown table,
//! and a read takes a shared lock and sets one bit.
//!
//! Eviction: when a shard is full, a hand sweeps its slots; an expired slot
//! or one not read since the hand last passed is replaced, a read one loses
//! its bit and is passed. Expired entries are invisible to readers and are
//! reclaimed by the hand or by an overwrite.

use std::{
    hash::{BuildHasher, Hash},
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hashbrown::HashTable;

/// Set in a slot's state when it was read since the hand last passed.
const REFERENCED: u64 = 1 << 63;
const EXPIRY: u64 = REFERENCED - 1;

/// Shards are locked independently; 64 is well past the core counts keyward
/// runs on, and small enough that a tiny capacity still gets a few slots per
/// shard.
const MAX_SHARDS: usize = 64;
const MIN_SLOTS_PER_SHARD: usize = 16;

type Hasher = foldhash::fast::RandomState;

pub struct Clock<K, V> {
    shards: Box<[RwLock<Shard<K, V>>]>,
    hasher: Hasher,
    epoch: Instant,
}

struct Shard<K, V> {
    slots: Vec<Slot<K, V>>,
    /// Positions in `slots`, found by the key's hash.
    index: HashTable<u32>,
    capacity: usize,
    hand: usize,
}

struct Slot<K, V> {
    key: K,
    value: V,
    /// Expiry in µs since `epoch`, and the `REFERENCED` bit, which readers
    /// set under the shared lock.
    state: AtomicU64,
}

impl<K: Hash + Eq + Copy, V: Clone> Clock<K, V> {
    /// At most about `capacity` entries (each shard holds its share, rounded
    /// up). Slot storage is reserved up front but only touched as it fills,
    /// so an idle cache costs no resident memory.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = (capacity / MIN_SLOTS_PER_SHARD)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let per_shard = capacity.div_ceil(shards);
        let shards = (0..shards)
            .map(|_| {
                RwLock::new(Shard {
                    slots: Vec::with_capacity(per_shard),
                    index: HashTable::new(),
                    capacity: per_shard,
                    hand: 0,
                })
            })
            .collect();
        Self {
            shards,
            hasher: Hasher::default(),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn locate(&self, key: &K) -> (u64, &RwLock<Shard<K, V>>) {
        let hash = self.hasher.hash_one(key);
        // hashbrown takes the bucket from the low bits and its tag from the
        // top 7: the shard takes bits from neither, or every key of a shard
        // would share one tag and lookups would compare keys on every probe.
        let shard = (hash >> 32) as usize & (self.shards.len() - 1);
        (hash, &self.shards[shard])
    }

    /// The live value for `key`, marking it as recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        let (hash, shard) = self.locate(key);
        let shard = shard.read().unwrap_or_else(|e| e.into_inner());
        let &at = shard
            .index
            .find(hash, |&i| shard.slots[i as usize].key == *key)?;
        let slot = &shard.slots[at as usize];
        let state = slot.state.load(Ordering::Relaxed);
        if state & EXPIRY <= self.now() {
            return None;
        }
        if state & REFERENCED == 0 {
            // Only the first read since the hand passed writes the line.
            slot.state.fetch_or(REFERENCED, Ordering::Relaxed);
        }
        Some(slot.value.clone())
    }

    /// Stores `value` for `ttl`, replacing any entry for `key`, and evicting
    /// another if the shard is full.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let expiry = (self.now() + ttl.as_micros() as u64).clamp(1, EXPIRY);
        let (hash, shard) = self.locate(&key);
        let mut guard = shard.write().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *guard;
        if let Some(&at) = shard
            .index
            .find(hash, |&i| shard.slots[i as usize].key == key)
        {
            let slot = &mut shard.slots[at as usize];
            slot.value = value;
            *slot.state.get_mut() = expiry;
            return;
        }
        let slot = Slot {
            key,
            value,
            state: AtomicU64::new(expiry),
        };
        let at = if shard.slots.len() < shard.capacity {
            shard.slots.push(slot);
            shard.slots.len() - 1
        } else {
            let victim = shard.sweep(self.now());
            let old = std::mem::replace(&mut shard.slots[victim], slot);
            shard.unindex(self.hasher.hash_one(old.key), victim);
            victim
        };
        let Shard { slots, index, .. } = shard;
        index.insert_unique(hash, at as u32, |&i| {
            self.hasher.hash_one(slots[i as usize].key)
        });
    }

    /// Drops the entry for `key`, if any.
    pub fn remove(&self, key: &K) {
        let (hash, shard) = self.locate(key);
        let mut guard = shard.write().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *guard;
        let Ok(found) = shard
            .index
            .find_entry(hash, |&i| shard.slots[i as usize].key == *key)
        else {
            return;
        };
        let (at, _) = found.remove();
        let at = at as usize;
        shard.slots.swap_remove(at);
        // The last slot moved into the hole: re-point its index entry.
        if let Some(moved) = shard.slots.get(at) {
            let moved_from = shard.slots.len() as u32;
            let hash = self.hasher.hash_one(moved.key);
            if let Some(i) = shard.index.find_mut(hash, |&i| i == moved_from) {
                *i = at as u32;
            }
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            shard.slots.clear();
            shard.index.clear();
            shard.hand = 0;
        }
    }

    /// Entries held, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).slots.len())
            .sum()
    }
}

impl<K, V> Shard<K, V> {
    /// Advances the hand to a slot that may be replaced: expired, or not read
    /// since the last pass. Two passes always find one, as the first clears
    /// every bit it meets.
    fn sweep(&mut self, now: u64) -> usize {
        let len = self.slots.len();
        for _ in 0..2 * len {
            let at = self.hand % len;
            self.hand = at + 1;
            let state = self.slots[at].state.get_mut();
            if *state & EXPIRY <= now || *state & REFERENCED == 0 {
                return at;
            }
            *state &= !REFERENCED;
        }
        self.hand % len
    }

    fn unindex(&mut self, hash: u64, at: usize) {
        if let Ok(found) = self.index.find_entry(hash, |&i| i as usize == at) {
            found.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn keeps_what_it_was_given_until_removed() {
        let c = Clock::new(100);
        c.insert(1u64, "a", LONG);
        c.insert(2, "b", LONG);
        c.insert(1, "c", LONG);
        assert_eq!((c.get(&1), c.get(&2), c.len()), (Some("c"), Some("b"), 2));
        c.remove(&1);
        assert_eq!((c.get(&1), c.get(&2), c.len()), (None, Some("b"), 1));
        c.clear();
        assert!(c.get(&2).is_none() && c.len() == 0);
    }

    #[test]
    fn removal_keeps_the_moved_slot_findable() {
        let c = Clock::new(16);
        for k in 0..16u64 {
            c.insert(k, k, LONG);
        }
        for k in (0..16u64).step_by(3) {
            c.remove(&k);
        }
        for k in 0..16u64 {
            assert_eq!(c.get(&k), (k % 3 != 0).then_some(k), "key {k}");
        }
    }

    #[test]
    fn entries_expire_after_their_own_ttl() {
        let c = Clock::new(100);
        c.insert(1u64, 1, Duration::from_millis(30));
        c.insert(2, 2, LONG);
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.get(&1).is_some() {
            assert!(Instant::now() < deadline, "entry outlived its TTL");
            std::thread::yield_now();
        }
        assert_eq!(c.get(&2), Some(2));
    }

    #[test]
    fn read_entries_survive_eviction() {
        // Below MIN_SLOTS_PER_SHARD: one shard, so the sweep order is known.
        let c = Clock::new(16);
        for k in 0..16u64 {
            c.insert(k, k, LONG);
        }
        let hot: Vec<u64> = (0..16).step_by(4).collect();
        for k in 1_000..1_200u64 {
            for h in &hot {
                assert_eq!(c.get(h), Some(*h), "hot key {h} evicted before {k}");
            }
            c.insert(k, k, LONG);
            assert_eq!(c.len(), 16);
        }
    }

    #[test]
    fn capacity_bounds_the_entries_across_shards() {
        let c = Clock::new(1_024);
        for k in 0..10_000u64 {
            c.insert(k, k, LONG);
            assert!(c.len() <= 1_024, "{} entries", c.len());
        }
        assert!(c.len() > 1_024 / 2, "{} entries", c.len());
    }

    #[test]
    fn expired_entries_are_evicted_first() {
        let c = Clock::new(1);
        c.insert(1u64, 1, Duration::ZERO);
        c.insert(2, 2, LONG);
        assert_eq!((c.get(&1), c.get(&2), c.len()), (None, Some(2), 1));
    }

    #[test]
    fn concurrent_readers_and_writers_agree() {
        let c = Arc::new(Clock::new(4_096));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        let k = (i * 7 + t) % 8_192;
                        c.insert(k, k * 2, LONG);
                        if let Some(v) = c.get(&k) {
                            assert_eq!(v, k * 2);
                        }
                        if i % 5 == 0 {
                            c.remove(&((k + 1) % 8_192));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(c.len() <= 4_096 + 64);
        for k in 0..8_192u64 {
            if let Some(v) = c.get(&k) {
                assert_eq!(v, k * 2);
            }
        }
    }
}
