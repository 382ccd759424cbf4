//! Limits on what clients may send, checked before anything is stored. Each
//! failure names the field, so a client can tell what to fix.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    error::Error,
    key::KeyId,
    limit::{Quota, RateLimit},
    scope,
};

pub const MAX_NAME: usize = 128;
pub const MAX_KEY: usize = 512;
pub const MAX_SCOPES: usize = 64;
pub const MAX_METADATA: usize = 64;
pub const MAX_METADATA_VALUE: usize = 1024;
pub const MAX_REASON: usize = 512;

/// A project or label: 1 to 128 bytes, no control characters.
pub fn name(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_NAME {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_NAME} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Scopes to grant: at most 64 valid scopes; duplicates are dropped.
pub fn granted_scopes(field: &str, scopes: Vec<String>) -> Result<Vec<String>, Error> {
    if scopes.len() > MAX_SCOPES {
        return Err(Error::invalid(
            field,
            format!("more than {MAX_SCOPES} scopes"),
        ));
    }
    let mut unique = Vec::with_capacity(scopes.len());
    for (i, s) in scopes.into_iter().enumerate() {
        scope::validate(&s).map_err(|e| Error::invalid(format!("{field}[{i}]"), e.to_string()))?;
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    Ok(unique)
}

/// Scopes a call requires: checked cheaply, since this runs on every Verify.
pub fn required_scopes(field: &str, scopes: &[String]) -> Result<(), Error> {
    if scopes.len() > MAX_SCOPES {
        return Err(Error::invalid(
            field,
            format!("more than {MAX_SCOPES} scopes"),
        ));
    }
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.len() > scope::MAX_LEN {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("must be 1 to {} bytes", scope::MAX_LEN),
            ));
        }
    }
    Ok(())
}

pub fn metadata(field: &str, metadata: &BTreeMap<String, String>) -> Result<(), Error> {
    if metadata.len() > MAX_METADATA {
        return Err(Error::invalid(
            field,
            format!("more than {MAX_METADATA} entries"),
        ));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.len() > MAX_NAME {
            return Err(Error::invalid(
                field,
                format!("keys must be 1 to {MAX_NAME} bytes"),
            ));
        }
        if v.len() > MAX_METADATA_VALUE {
            return Err(Error::invalid(
                format!("{field}[{k}]"),
                format!("longer than {MAX_METADATA_VALUE} bytes"),
            ));
        }
    }
    Ok(())
}

pub fn key_length(field: &str, key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_KEY} bytes"),
        ));
    }
    Ok(())
}

pub fn key_id(field: &str, id: &str) -> Result<KeyId, Error> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    id.parse()
        .map_err(|e: crate::key::InvalidKeyId| Error::invalid(field, e.to_string()))
}

/// The earliest instant keyward accepts: nothing it stores predates the epoch.
pub const MIN_TIME: DateTime<Utc> = DateTime::UNIX_EPOCH;
/// The latest instant keyward accepts, 9999-12-31T23:59:59Z: every engine
/// and every client library can hold it, and expiry arithmetic on it
/// cannot overflow.
pub const MAX_TIME: DateTime<Utc> = match DateTime::from_timestamp(253_402_300_799, 0) {
    Some(t) => t,
    None => panic!("9999-12-31T23:59:59Z is a valid time"),
};

/// A time a client sent: within [`MIN_TIME`] ..= [`MAX_TIME`].
pub fn time(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    if (MIN_TIME..=MAX_TIME).contains(&at) {
        Ok(at)
    } else {
        Err(Error::invalid(
            field,
            "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
        ))
    }
}

pub fn future_time(field: &str, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Error> {
    time(field, at)?;
    if at <= now {
        return Err(Error::invalid(field, "must be in the future"));
    }
    Ok(())
}

/// `at + by`, held within [`MIN_TIME`] ..= [`MAX_TIME`] instead of
/// overflowing: a lifetime copied by Rotate or a grace period never makes
/// a time keyward could not store.
pub fn later_by(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    match at.checked_add_signed(by) {
        Some(t) => t.clamp(MIN_TIME, MAX_TIME),
        None if by < TimeDelta::zero() => MIN_TIME,
        None => MAX_TIME,
    }
}

/// Bounds on limits, so the limit arithmetic (µs in an `i64`, and doubles
/// in the Redis script) stays exact.
pub const MAX_RATE_LIMIT: u32 = 1_000_000_000;
pub const MAX_BURST: u32 = 1_000_000;
pub const MAX_QUOTA: i64 = 1_000_000_000_000_000;
pub const MAX_REFILL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

pub fn rate_limit(field: &str, limit: &RateLimit) -> Result<(), Error> {
    if !(1..=MAX_RATE_LIMIT).contains(&limit.limit) {
        return Err(Error::invalid(
            format!("{field}.limit"),
            format!("must be 1 to {MAX_RATE_LIMIT}"),
        ));
    }
    if !(RateLimit::MIN_PERIOD..=RateLimit::MAX_PERIOD).contains(&limit.period) {
        return Err(Error::invalid(
            format!("{field}.period"),
            "must be 1 ms to 1 day",
        ));
    }
    if u128::from(limit.limit) > limit.period.as_micros() {
        return Err(Error::invalid(
            format!("{field}.limit"),
            "more than one call per microsecond",
        ));
    }
    if !(1..=MAX_BURST).contains(&limit.burst) {
        return Err(Error::invalid(
            format!("{field}.burst"),
            format!("must be 0 to {MAX_BURST} (0 means 1)"),
        ));
    }
    Ok(())
}

pub fn quota(field: &str, quota: &Quota) -> Result<(), Error> {
    if !(1..=MAX_QUOTA).contains(&quota.limit) {
        return Err(Error::invalid(
            format!("{field}.limit"),
            format!("must be 1 to {MAX_QUOTA}"),
        ));
    }
    if !(0..=MAX_QUOTA).contains(&quota.refill_amount) {
        return Err(Error::invalid(
            format!("{field}.refill_amount"),
            format!("must be 0 to {MAX_QUOTA}"),
        ));
    }
    if quota.refill_interval > MAX_REFILL_INTERVAL {
        return Err(Error::invalid(
            format!("{field}.refill_interval"),
            "must be at most 366 days",
        ));
    }
    Ok(())
}

pub const MAX_CIDRS: usize = 64;

/// Allowed sources: CIDR ranges or single addresses, at most 64.
pub fn cidrs(field: &str, texts: &[String]) -> Result<Vec<ipnet::IpNet>, Error> {
    if texts.len() > MAX_CIDRS {
        return Err(Error::invalid(
            field,
            format!("more than {MAX_CIDRS} ranges"),
        ));
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    Error::invalid(format!("{field}[{i}]"), "not a CIDR range or an IP address")
                })?;
            // `10.1.2.3/8` means 10.0.0.0/8: store what is meant.
            Ok(net.trunc())
        })
        .collect()
}

pub fn reason(field: &str, reason: &str) -> Result<(), Error> {
    if reason.len() > MAX_REASON {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_REASON} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<impl std::fmt::Debug, Error>) -> String {
        match result {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(name("project", "acme").is_ok());
        assert_eq!(field_of(name("project", "")), "project");
        assert_eq!(field_of(name("label", &"x".repeat(129))), "label");
        assert!(name("label", &"x".repeat(128)).is_ok());
        assert_eq!(field_of(name("label", "a\nb")), "label");
    }

    #[test]
    fn granted_scopes_name_the_bad_one_and_drop_duplicates() {
        let ok = granted_scopes(
            "scopes",
            vec!["a:read".into(), "a:read".into(), "b:*".into()],
        );
        assert_eq!(ok.unwrap(), vec!["a:read".to_string(), "b:*".to_string()]);
        assert_eq!(
            field_of(granted_scopes("scopes", vec!["a".into(), "".into()])),
            "scopes[1]"
        );
        assert_eq!(
            field_of(granted_scopes("scopes", vec!["s".into(); 65])),
            "scopes"
        );
    }

    #[test]
    fn required_scopes_are_bounded() {
        assert!(required_scopes("required_scopes", &["a".into()]).is_ok());
        assert_eq!(
            field_of(required_scopes("required_scopes", &["".into()])),
            "required_scopes[0]"
        );
        assert_eq!(
            field_of(required_scopes("required_scopes", &vec!["a".into(); 65])),
            "required_scopes"
        );
    }

    #[test]
    fn metadata_is_bounded() {
        let mut m = BTreeMap::new();
        m.insert("owner".to_string(), "team-a".to_string());
        assert!(metadata("metadata", &m).is_ok());
        m.insert("big".to_string(), "v".repeat(1025));
        assert_eq!(field_of(metadata("metadata", &m)), "metadata[big]");
        let empty_key: BTreeMap<_, _> = [(String::new(), String::new())].into();
        assert_eq!(field_of(metadata("metadata", &empty_key)), "metadata");
    }

    #[test]
    fn cidrs_accept_ranges_and_addresses() {
        let nets = cidrs(
            "allowed_cidrs",
            &["10.1.2.3/8".into(), "2001:db8::1".into()],
        )
        .unwrap();
        assert_eq!(nets[0].to_string(), "10.0.0.0/8");
        assert_eq!(nets[1].to_string(), "2001:db8::1/128");
        assert_eq!(
            field_of(cidrs(
                "allowed_cidrs",
                &["10.0.0.0/8".into(), "nope".into()]
            )),
            "allowed_cidrs[1]"
        );
        assert_eq!(
            field_of(cidrs("allowed_cidrs", &vec!["10.0.0.1".into(); 65])),
            "allowed_cidrs"
        );
    }

    #[test]
    fn times_are_bounded_to_the_documented_range() {
        assert_eq!(MAX_TIME.to_rfc3339(), "9999-12-31T23:59:59+00:00");
        assert!(time("t", MAX_TIME).is_ok());
        assert!(time("t", MIN_TIME).is_ok());
        let after = MAX_TIME + TimeDelta::seconds(1);
        assert_eq!(field_of(time("expires_at", after)), "expires_at");
        let before = MIN_TIME - TimeDelta::microseconds(1);
        assert_eq!(field_of(time("since", before)), "since");
        let now = Utc::now();
        assert_eq!(
            field_of(future_time(
                "expires_at",
                MAX_TIME + TimeDelta::days(1),
                now
            )),
            "expires_at"
        );
        assert!(future_time("expires_at", MAX_TIME, now).is_ok());
    }

    #[test]
    fn later_by_stays_within_the_range_instead_of_overflowing() {
        let now = Utc::now();
        assert_eq!(
            later_by(now, TimeDelta::hours(1)),
            now + TimeDelta::hours(1)
        );
        assert_eq!(later_by(now, MAX_TIME - MIN_TIME), MAX_TIME);
        assert_eq!(later_by(DateTime::<Utc>::MAX_UTC, TimeDelta::MAX), MAX_TIME);
        assert_eq!(later_by(now, TimeDelta::MIN), MIN_TIME);
    }

    #[test]
    fn limits_are_bounded_by_field() {
        use std::time::Duration;
        let ok = RateLimit {
            limit: 100,
            period: Duration::from_secs(1),
            burst: 10,
        };
        assert!(rate_limit("rate_limit", &ok).is_ok());
        let day = Duration::from_secs(86_400);
        let most = RateLimit {
            limit: MAX_RATE_LIMIT,
            period: day,
            burst: MAX_BURST,
        };
        assert!(rate_limit("rate_limit", &most).is_ok());
        let field = |l: RateLimit| field_of(rate_limit("rate_limit", &l));
        assert_eq!(
            field(RateLimit {
                burst: MAX_BURST + 1,
                ..ok
            }),
            "rate_limit.burst"
        );
        assert_eq!(field(RateLimit { burst: 0, ..ok }), "rate_limit.burst");
        assert_eq!(
            field(RateLimit {
                limit: MAX_RATE_LIMIT + 1,
                ..most
            }),
            "rate_limit.limit"
        );
        assert_eq!(field(RateLimit { limit: 0, ..ok }), "rate_limit.limit");
        assert_eq!(
            field(RateLimit {
                limit: 2_000,
                period: Duration::from_millis(1),
                ..ok
            }),
            "rate_limit.limit",
            "more than one call per µs"
        );
        assert_eq!(
            field(RateLimit {
                period: day * 2,
                ..ok
            }),
            "rate_limit.period"
        );

        let q = Quota {
            limit: MAX_QUOTA,
            period: crate::limit::QuotaPeriod::Credits,
            refill_amount: MAX_QUOTA,
            refill_interval: MAX_REFILL_INTERVAL,
        };
        assert!(quota("quota", &q).is_ok());
        let field = |q: Quota| field_of(quota("quota", &q));
        assert_eq!(
            field(Quota {
                limit: MAX_QUOTA + 1,
                ..q
            }),
            "quota.limit"
        );
        assert_eq!(
            field(Quota {
                refill_amount: -1,
                ..q
            }),
            "quota.refill_amount"
        );
        assert_eq!(
            field(Quota {
                refill_interval: MAX_REFILL_INTERVAL + Duration::from_secs(1),
                ..q
            }),
            "quota.refill_interval"
        );
    }

    #[test]
    fn keys_and_ids() {
        assert!(key_length("key", &"k".repeat(512)).is_ok());
        assert_eq!(field_of(key_length("key", &"k".repeat(513))), "key");
        assert_eq!(field_of(key_id("key_id", "nope")), "key_id");
        assert_eq!(field_of(key_id("key_id", "")), "key_id");
        let id = KeyId::generate();
        assert_eq!(key_id("key_id", id.as_str()).unwrap(), id);
    }
}
