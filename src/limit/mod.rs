//! Rate limits and quotas: the stateful part of a decision, applied only to
//! keys that have them and only after every stateless check passed.
//!
//! With Redis, one script per limited decision applies both limits across all
//! replicas; without it (or while it is down), each replica keeps its own
//! state, so the limits hold per replica.

mod gcra;
mod local;
mod policy;
pub mod quota;
mod redis;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};

pub use self::{
    local::LocalLimiter,
    policy::{Limits, Quota, QuotaPeriod, RateLimit},
    redis::RedisLimiter,
};
use crate::key::KeyId;

/// What the limits say about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed; `remaining` is what is left of the quota, if there is one.
    Allowed {
        remaining: Option<i64>,
    },
    RateLimited {
        retry_after_us: i64,
    },
    QuotaExceeded,
}

impl Outcome {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Outcome::RateLimited { retry_after_us } => {
                Some(Duration::from_micros((*retry_after_us).max(0) as u64))
            }
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct Limiter {
    local: LocalLimiter,
    shared: Option<RedisLimiter>,
}

impl Limiter {
    pub fn new(shared: Option<RedisLimiter>) -> Arc<Self> {
        Arc::new(Self {
            local: LocalLimiter::default(),
            shared,
        })
    }

    pub async fn check(&self, id: &KeyId, limits: &Limits, now: DateTime<Utc>) -> Outcome {
        if let Some(shared) = &self.shared
            && let Some(outcome) = shared.check(id, limits, now).await
        {
            return outcome;
        }
        self.local.check(id, limits, now)
    }
}
