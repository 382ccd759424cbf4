//! Quota arithmetic shared by the local limiter and the Redis script: which
//! period a call falls in, and how credits come back.

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};

use super::{Quota, QuotaPeriod};

/// The period a call at `now` counts against: a name for the counter, and
/// when the period ends (µs), after which its counter can be forgotten.
pub fn period(quota: &Quota, now: DateTime<Utc>) -> (String, Option<i64>) {
    let date = now.date_naive();
    match quota.period {
        QuotaPeriod::Day => {
            let end = date.succ_opt().unwrap_or(date);
            (format!("d{}", date.format("%Y%m%d")), Some(midnight(end)))
        }
        QuotaPeriod::Month => {
            let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap_or(date);
            let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
            (format!("m{}", date.format("%Y%m")), Some(midnight(next)))
        }
        QuotaPeriod::Credits => ("c".to_owned(), None),
    }
}

fn midnight(date: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
        .timestamp_micros()
}

/// How long until an exhausted quota allows a call again, when that is
/// known: the end of the day or month, or (credits) one refill interval at
/// most. `None` for credits that never refill.
pub fn resets_in(quota: &Quota, now: DateTime<Utc>) -> Option<std::time::Duration> {
    match quota.period {
        QuotaPeriod::Credits if quota.refills() => Some(quota.refill_interval),
        QuotaPeriod::Credits => None,
        _ => {
            let (_, end) = period(quota, now);
            let micros = end? - now.timestamp_micros();
            Some(std::time::Duration::from_micros(micros.max(0) as u64))
        }
    }
}

/// Credits spent after refills up to `now`: `(used, last_refill)`.
pub fn refill(quota: &Quota, used: i64, last_refill: i64, now: i64) -> (i64, i64) {
    if !quota.refills() {
        return (used, last_refill);
    }
    let interval = i64::try_from(quota.refill_interval.as_micros()).unwrap_or(i64::MAX);
    let refills = now.saturating_sub(last_refill).max(0) / interval;
    if refills == 0 {
        return (used, last_refill);
    }
    let back = refills.saturating_mul(quota.refill_amount);
    (
        used.saturating_sub(back).max(0),
        last_refill.saturating_add(refills.saturating_mul(interval)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quota(period: QuotaPeriod) -> Quota {
        Quota {
            limit: 10,
            period,
            refill_amount: 0,
            refill_interval: Duration::ZERO,
        }
    }

    #[test]
    fn days_and_months_are_utc_calendar_periods() {
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 0).unwrap();
        let (name, end) = period(&quota(QuotaPeriod::Day), now);
        assert_eq!(name, "d20261231");
        assert_eq!(
            end,
            Some(
                Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                    .unwrap()
                    .timestamp_micros()
            )
        );
        let (name, end) = period(&quota(QuotaPeriod::Month), now);
        assert_eq!(name, "m202612");
        assert_eq!(
            end,
            Some(
                Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                    .unwrap()
                    .timestamp_micros()
            )
        );
        assert_eq!(
            period(&quota(QuotaPeriod::Credits), now),
            ("c".to_owned(), None)
        );
    }

    #[test]
    fn exhausted_quotas_say_when_they_reset() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 23, 0, 0).unwrap();
        assert_eq!(
            resets_in(&quota(QuotaPeriod::Day), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            resets_in(&quota(QuotaPeriod::Month), now),
            Some(Duration::from_secs(3600 + 86_400))
        );
        assert_eq!(resets_in(&quota(QuotaPeriod::Credits), now), None);
    }

    #[test]
    fn credits_come_back_per_interval() {
        let q = Quota {
            limit: 10,
            period: QuotaPeriod::Credits,
            refill_amount: 2,
            refill_interval: Duration::from_secs(1),
        };
        assert_eq!(refill(&q, 10, 0, 500_000), (10, 0), "not yet");
        assert_eq!(
            refill(&q, 10, 0, 2_500_000),
            (6, 2_000_000),
            "two refills, the half interval kept"
        );
        assert_eq!(
            refill(&q, 3, 0, 60_000_000),
            (0, 60_000_000),
            "never below zero"
        );
        assert_eq!(
            refill(&quota(QuotaPeriod::Credits), 7, 0, 60_000_000),
            (7, 0),
            "no refill configured"
        );
    }
}
