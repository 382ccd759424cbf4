//! Per-replica limits: the same GCRA and quota arithmetic as the Redis
//! script, on in-process state. Used when Redis is not configured, and while
//! it is down.

use std::{collections::HashMap, hash::BuildHasher, sync::Mutex};

use chrono::{DateTime, Utc};

use super::{Limits, Outcome, gcra, quota};
use crate::key::KeyId;

const SHARDS: usize = 64;

#[derive(Default)]
struct State {
    tat: Option<i64>,
    period: String,
    used: i64,
    last_refill: i64,
}

pub struct LocalLimiter {
    shards: Box<[Mutex<HashMap<KeyId, State>>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl LocalLimiter {
    /// Applies both limits atomically: a call refused by the rate limit
    /// spends no quota, and one refused by the quota does not advance the
    /// rate limit.
    pub fn check(&self, id: &KeyId, limits: &Limits, now: DateTime<Utc>) -> Outcome {
        let shard = &self.shards[self.hasher.hash_one(id) as usize % SHARDS];
        let mut states = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = states.entry(id.clone()).or_default();
        let now_us = now.timestamp_micros();

        let new_tat = match &limits.rate {
            Some(rate) => {
                match gcra::check(state.tat, now_us, rate.interval_us(), rate.tolerance_us()) {
                    Ok(tat) => Some(tat),
                    Err(retry_after_us) => return Outcome::RateLimited { retry_after_us },
                }
            }
            None => None,
        };
        let remaining = match &limits.quota {
            Some(q) => {
                let (period, _) = quota::period(q, now);
                if state.period != period {
                    state.period = period;
                    state.used = 0;
                    state.last_refill = now_us;
                }
                let (used, last_refill) = quota::refill(q, state.used, state.last_refill, now_us);
                state.used = used;
                state.last_refill = last_refill;
                if used >= q.limit {
                    return Outcome::QuotaExceeded;
                }
                state.used += 1;
                Some(q.limit - state.used)
            }
            None => None,
        };
        if new_tat.is_some() {
            state.tat = new_tat;
        }
        Outcome::Allowed { remaining }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::{Quota, QuotaPeriod, RateLimit};
    use std::time::Duration;

    fn limits(rate: Option<(u32, u32)>, quota: Option<i64>) -> Limits {
        Limits {
            rate: rate.map(|(limit, burst)| RateLimit {
                limit,
                period: Duration::from_secs(1),
                burst,
            }),
            quota: quota.map(|limit| Quota {
                limit,
                period: QuotaPeriod::Day,
                refill_amount: 0,
                refill_interval: Duration::ZERO,
            }),
        }
    }

    #[test]
    fn burst_then_rate_limited_with_a_retry_time() {
        let limiter = LocalLimiter::default();
        let id = KeyId::generate();
        let l = limits(Some((10, 3)), None);
        let now = Utc::now();
        for _ in 0..3 {
            assert!(matches!(
                limiter.check(&id, &l, now),
                Outcome::Allowed { remaining: None }
            ));
        }
        match limiter.check(&id, &l, now) {
            Outcome::RateLimited { retry_after_us } => assert_eq!(retry_after_us, 100_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quota_counts_down_and_stops() {
        let limiter = LocalLimiter::default();
        let id = KeyId::generate();
        let l = limits(None, Some(2));
        let now = Utc::now();
        assert!(matches!(
            limiter.check(&id, &l, now),
            Outcome::Allowed { remaining: Some(1) }
        ));
        assert!(matches!(
            limiter.check(&id, &l, now),
            Outcome::Allowed { remaining: Some(0) }
        ));
        assert!(matches!(
            limiter.check(&id, &l, now),
            Outcome::QuotaExceeded
        ));
        let tomorrow = now + chrono::Duration::days(1);
        assert!(
            matches!(
                limiter.check(&id, &l, tomorrow),
                Outcome::Allowed { remaining: Some(1) }
            ),
            "a new day"
        );
    }

    #[test]
    fn a_rate_limited_call_spends_no_quota() {
        let limiter = LocalLimiter::default();
        let id = KeyId::generate();
        let l = limits(Some((1, 1)), Some(5));
        let now = Utc::now();
        assert!(matches!(
            limiter.check(&id, &l, now),
            Outcome::Allowed { remaining: Some(4) }
        ));
        for _ in 0..10 {
            assert!(matches!(
                limiter.check(&id, &l, now),
                Outcome::RateLimited { .. }
            ));
        }
        let later = now + chrono::Duration::seconds(1);
        assert!(matches!(
            limiter.check(&id, &l, later),
            Outcome::Allowed { remaining: Some(3) }
        ));
    }

    #[test]
    fn a_call_over_quota_does_not_advance_the_rate_limit() {
        let limiter = LocalLimiter::default();
        let id = KeyId::generate();
        let l = limits(Some((1, 1)), Some(1));
        let now = Utc::now();
        assert!(matches!(
            limiter.check(&id, &l, now),
            Outcome::Allowed { .. }
        ));
        let later = now + chrono::Duration::seconds(1);
        assert!(matches!(
            limiter.check(&id, &l, later),
            Outcome::QuotaExceeded
        ));
        // Had the refused call been charged, the schedule would be a second
        // ahead and this call rate limited.
        let rate_only = limits(Some((1, 1)), None);
        assert!(matches!(
            limiter.check(&id, &rate_only, later),
            Outcome::Allowed { .. }
        ));
    }
}
