//! What a key's limits are: a rate limit (GCRA) and a quota. Stored as JSON
//! in the key's row, cached in its record.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `limit` calls per `period` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub limit: u32,
    #[serde(rename = "period_ms", with = "millis")]
    pub period: Duration,
    pub burst: u32,
}

impl RateLimit {
    pub const MIN_PERIOD: Duration = Duration::from_millis(1);
    pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);

    /// GCRA's emission interval: the time one call "costs", in µs.
    pub fn interval_us(&self) -> i64 {
        let period = i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX);
        (period / i64::from(self.limit.max(1))).max(1)
    }

    /// GCRA's tolerance: how far ahead of now the schedule may run, in µs;
    /// `burst` calls fit in it at once. Saturating, so a huge burst (a row
    /// written before bursts were bounded) means "many", never a negative
    /// tolerance that refuses the first call.
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us()
            .saturating_mul(i64::from(self.burst.max(1) - 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
    Credits,
}

/// A budget of calls per UTC day or month, or a credit balance with an
/// optional refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub limit: i64,
    pub period: QuotaPeriod,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refill_amount: i64,
    #[serde(
        rename = "refill_interval_ms",
        default,
        with = "millis",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub refill_interval: Duration,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Quota {
    /// Whether credits come back over time.
    pub fn refills(&self) -> bool {
        self.period == QuotaPeriod::Credits
            && self.refill_amount > 0
            && !self.refill_interval.is_zero()
    }
}

/// Both limits of a key; boxed in the record so that keys without limits
/// stay small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub rate: Option<RateLimit>,
    pub quota: Option<Quota>,
}

impl Limits {
    pub fn new(rate: Option<RateLimit>, quota: Option<Quota>) -> Option<Box<Self>> {
        (rate.is_some() || quota.is_some()).then(|| Box::new(Self { rate, quota }))
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_parameters() {
        let limit = RateLimit {
            limit: 100,
            period: Duration::from_secs(1),
            burst: 10,
        };
        assert_eq!(limit.interval_us(), 10_000);
        assert_eq!(limit.tolerance_us(), 90_000);
        let one = RateLimit {
            limit: 1,
            period: Duration::from_secs(1),
            burst: 0,
        };
        assert_eq!(one.tolerance_us(), 0, "burst 0 means one call at a time");
    }

    #[test]
    fn huge_limits_saturate() {
        let huge = RateLimit {
            limit: 1,
            period: Duration::from_secs(86_400),
            burst: u32::MAX,
        };
        assert_eq!(huge.interval_us(), 86_400_000_000);
        assert_eq!(huge.tolerance_us(), i64::MAX);
        let endless = RateLimit {
            limit: 1,
            period: Duration::from_secs(u64::MAX),
            burst: 2,
        };
        assert_eq!(endless.interval_us(), i64::MAX);
        assert_eq!(endless.tolerance_us(), i64::MAX);
    }

    #[test]
    fn limits_round_trip_through_json() {
        let rate = RateLimit {
            limit: 5,
            period: Duration::from_millis(1500),
            burst: 2,
        };
        let text = serde_json::to_string(&rate).unwrap();
        assert_eq!(text, r#"{"limit":5,"period_ms":1500,"burst":2}"#);
        assert_eq!(serde_json::from_str::<RateLimit>(&text).unwrap(), rate);
        let quota = Quota {
            limit: 500,
            period: QuotaPeriod::Day,
            refill_amount: 0,
            refill_interval: Duration::ZERO,
        };
        let text = serde_json::to_string(&quota).unwrap();
        assert_eq!(text, r#"{"limit":500,"period":"day"}"#);
        assert_eq!(serde_json::from_str::<Quota>(&text).unwrap(), quota);
        let credits = Quota {
            limit: 10,
            period: QuotaPeriod::Credits,
            refill_amount: 1,
            refill_interval: Duration::from_secs(60),
        };
        assert!(credits.refills());
        assert_eq!(
            serde_json::from_str::<Quota>(&serde_json::to_string(&credits).unwrap()).unwrap(),
            credits
        );
        assert!(Limits::new(None, None).is_none());
    }
}
