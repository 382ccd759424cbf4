//! Limits shared by every replica: one Lua script per limited decision (one
//! round trip), which applies the rate limit and the quota atomically, with
//! no partial deductions.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Limits, Outcome, QuotaPeriod, quota};
use crate::{cache::RedisCache, key::KeyId};

/// KEYS[1]: the GCRA schedule; KEYS[2]: the quota counter (a hash for
/// credits). ARGV: now, interval, tolerance (µs; interval 0 = no rate
/// limit), quota limit (0 = none), counter expiry (ms, 0 = never), credits
/// (1/0), refill amount, refill interval (µs). Returns {code, retry after µs,
/// remaining (-1: no quota)}: code 0 allowed, 1 rate limited, 2 over quota.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local new_tat = nil
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or now)
  if tat < now then tat = now end
  if tat - now > tolerance then
    return {1, tat - now - tolerance, -1}
  end
  new_tat = tat + interval
end
local remaining = -1
local limit = tonumber(ARGV[4])
if limit > 0 then
  if ARGV[6] == '1' then
    local used = tonumber(redis.call('HGET', KEYS[2], 'used') or '0')
    local last = tonumber(redis.call('HGET', KEYS[2], 'last') or now)
    local amount = tonumber(ARGV[7])
    local every = tonumber(ARGV[8])
    if amount > 0 and every > 0 then
      local refills = math.floor((now - last) / every)
      if refills > 0 then
        used = math.max(0, used - refills * amount)
        last = last + refills * every
      end
    end
    if used >= limit then
      redis.call('HSET', KEYS[2], 'used', used, 'last', last)
      return {2, 0, 0}
    end
    used = used + 1
    redis.call('HSET', KEYS[2], 'used', used, 'last', last)
    remaining = limit - used
  else
    local used = tonumber(redis.call('GET', KEYS[2]) or '0')
    if used >= limit then
      return {2, 0, 0}
    end
    used = redis.call('INCR', KEYS[2])
    if used == 1 and tonumber(ARGV[5]) > 0 then
      redis.call('PEXPIRE', KEYS[2], ARGV[5])
    end
    remaining = limit - used
  end
end
if new_tat then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
return {0, 0, remaining}";

pub struct RedisLimiter {
    redis: Arc<RedisCache>,
    namespace: String,
    script: redis::Script,
}

impl RedisLimiter {
    pub fn new(redis: Arc<RedisCache>, namespace: &str) -> Self {
        Self {
            redis,
            namespace: namespace.to_owned(),
            script: redis::Script::new(SCRIPT),
        }
    }

    /// `None` when Redis cannot answer (the caller falls back to local
    /// limits).
    pub async fn check(&self, id: &KeyId, limits: &Limits, now: DateTime<Utc>) -> Option<Outcome> {
        if !self.redis.is_up() {
            return None;
        }
        let now_us = now.timestamp_micros();
        // `{key id}` is a hash tag: both keys land in one Redis Cluster slot.
        let rate_key = format!("{}:rl1:{{{}}}", self.namespace, id);
        let (interval, tolerance) = limits
            .rate
            .map_or((0, 0), |r| (r.interval_us(), r.tolerance_us()));
        let (quota_key, limit, expire_ms, credits, amount, every) = match &limits.quota {
            Some(q) => {
                let (period, ends) = quota::period(q, now);
                // Kept an hour past the period's end, for clock skew.
                let expire_ms = ends.map_or(0, |end| (end - now_us) / 1000 + 3_600_000);
                (
                    format!("{}:q1:{{{}}}:{}", self.namespace, id, period),
                    q.limit,
                    expire_ms,
                    i64::from(q.period == QuotaPeriod::Credits),
                    q.refill_amount,
                    i64::try_from(q.refill_interval.as_micros()).unwrap_or(i64::MAX),
                )
            }
            None => (
                format!("{}:q1:{{{}}}:none", self.namespace, id),
                0,
                0,
                0,
                0,
                0,
            ),
        };
        let script = &self.script;
        let reply: (i64, i64, i64) = self
            .redis
            .call("rate_limit", async |conn| {
                script
                    .key(&rate_key)
                    .key(&quota_key)
                    .arg(now_us)
                    .arg(interval)
                    .arg(tolerance)
                    .arg(limit)
                    .arg(expire_ms)
                    .arg(credits)
                    .arg(amount)
                    .arg(every)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        Some(match reply {
            (1, retry_after_us, _) => Outcome::RateLimited { retry_after_us },
            (2, _, _) => Outcome::QuotaExceeded,
            (_, _, remaining) => Outcome::Allowed {
                remaining: (remaining >= 0).then_some(remaining),
            },
        })
    }
}
