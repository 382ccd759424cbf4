//! GCRA (the generic cell rate algorithm), the same arithmetic locally and in
//! the Redis script: each key has a theoretical arrival time (TAT); a call at
//! `now` is allowed while the TAT runs at most `tolerance` ahead of `now`,
//! and pushes it one `interval` further. So `burst` calls pass at once, then
//! one per interval.

/// A call at `now` (µs) against the stored TAT (`None`: never used).
/// `Ok(new_tat)` allows it; `Err(retry_after_us)` refuses it.
/// Saturating throughout: a schedule at the end of time refuses calls
/// rather than wrapping round to allow or refuse the wrong ones.
pub fn check(tat: Option<i64>, now: i64, interval: i64, tolerance: i64) -> Result<i64, i64> {
    let tat = tat.unwrap_or(now).max(now);
    let ahead = tat.saturating_sub(now);
    if ahead > tolerance {
        Err(ahead.saturating_sub(tolerance))
    } else {
        Ok(tat.saturating_add(interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let (interval, tolerance) = (10_000, 90_000); // 100/s, burst 10
        let mut tat = None;
        for i in 0..10 {
            tat = Some(
                check(tat, 0, interval, tolerance)
                    .unwrap_or_else(|_| panic!("call {i} of the burst")),
            );
        }
        assert_eq!(
            check(tat, 0, interval, tolerance),
            Err(10_000),
            "11th call waits one interval"
        );
        assert!(
            check(tat, 10_000, interval, tolerance).is_ok(),
            "then one more fits"
        );
    }

    #[test]
    fn allowed_calls_never_exceed_burst_plus_rate_times_elapsed() {
        let (interval, tolerance) = (10_000, 90_000);
        let mut tat = None;
        let mut allowed = 0;
        for now in (0..1_000_000).step_by(1_000) {
            for _ in 0..5 {
                if let Ok(next) = check(tat, now, interval, tolerance) {
                    tat = Some(next);
                    allowed += 1;
                }
            }
        }
        // 1 s at 100/s plus a burst of 10.
        assert!(allowed <= 10 + 100, "{allowed}");
        assert!(allowed >= 100, "{allowed}");
    }

    #[test]
    fn extreme_parameters_saturate_instead_of_wrapping() {
        assert_eq!(
            check(None, 0, 1, i64::MAX),
            Ok(1),
            "a huge tolerance allows"
        );
        assert_eq!(check(Some(i64::MAX), 0, 1, i64::MAX), Ok(i64::MAX));
        assert_eq!(check(Some(i64::MAX), i64::MIN, 1, 0), Err(i64::MAX));
        assert_eq!(check(Some(5), 0, i64::MAX, 10), Ok(i64::MAX));
    }

    #[test]
    fn an_idle_key_starts_fresh() {
        let tat = Some(5);
        assert_eq!(check(tat, 1_000_000, 10, 0), Ok(1_000_010));
    }
}
