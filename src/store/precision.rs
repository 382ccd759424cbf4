//! The precision the stores keep times in: microseconds (Postgres
//! `timestamptz`, and SQLite's integer micros). A time written is truncated
//! to it before anything else sees it, so a write's response and a later
//! read of the same key show the same instant.

use chrono::{DateTime, SubsecRound, Utc};

/// Digits of a second kept.
const DIGITS: u16 = 6;

pub fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(DIGITS)
}

/// The current time, as a store keeps it.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_are_dropped_not_rounded() {
        let at = DateTime::from_timestamp(1, 123_456_789).unwrap();
        assert_eq!(truncate(at).timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
