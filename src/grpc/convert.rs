//! Conversions between the wire types and keyward's own.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};

use crate::{
    decision::Reason,
    error::Error,
    key::KeyId,
    limit::{Quota, QuotaPeriod, RateLimit},
    proto::{timestamp::Timestamp, v1 as pb},
    store::{self, KeyStatus, StoredKey},
    validate,
    verify::Verdict,
};

pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(field: &str, ts: &Timestamp) -> Result<DateTime<Utc>, Error> {
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| Error::invalid(field, "nanos must be 0 to 999,999,999"))?;
    let at = DateTime::from_timestamp(ts.seconds, nanos)
        .ok_or_else(|| Error::invalid(field, "out of range"))?;
    // Kept as the store keeps it, so the response to a write shows it so.
    validate::time(field, store::precision::truncate(at))
}

pub fn from_duration(field: &str, d: &pbjson_types::Duration) -> Result<Duration, Error> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    if d.nanos >= 1_000_000_000 {
        return Err(Error::invalid(field, "nanos must be 0 to 999,999,999"));
    }
    Duration::try_seconds(d.seconds)
        .and_then(|s| s.checked_add(&Duration::nanoseconds(i64::from(d.nanos))))
        .ok_or_else(|| Error::invalid(field, "out of range"))
}

pub fn reason(reason: Reason) -> pb::Reason {
    match reason {
        Reason::Ok => pb::Reason::Ok,
        Reason::Missing => pb::Reason::Missing,
        Reason::Malformed => pb::Reason::Malformed,
        Reason::Unknown => pb::Reason::Unknown,
        Reason::Revoked => pb::Reason::Revoked,
        Reason::Expired => pb::Reason::Expired,
        Reason::InsufficientScope => pb::Reason::InsufficientScope,
        Reason::RateLimited => pb::Reason::RateLimited,
        Reason::QuotaExceeded => pb::Reason::QuotaExceeded,
        Reason::SourceNotAllowed => pb::Reason::SourceNotAllowed,
    }
}

pub fn status(status: KeyStatus) -> pb::KeyStatus {
    match status {
        KeyStatus::Active => pb::KeyStatus::Active,
        KeyStatus::Rotating => pb::KeyStatus::Rotating,
        KeyStatus::Revoked => pb::KeyStatus::Revoked,
        KeyStatus::Expired => pb::KeyStatus::Expired,
    }
}

pub fn status_filter(field: &str, value: i32) -> Result<Option<KeyStatus>, Error> {
    match pb::KeyStatus::try_from(value) {
        Ok(pb::KeyStatus::Unspecified) => Ok(None),
        Ok(pb::KeyStatus::Active) => Ok(Some(KeyStatus::Active)),
        Ok(pb::KeyStatus::Rotating) => Ok(Some(KeyStatus::Rotating)),
        Ok(pb::KeyStatus::Revoked) => Ok(Some(KeyStatus::Revoked)),
        Ok(pb::KeyStatus::Expired) => Ok(Some(KeyStatus::Expired)),
        Err(_) => Err(Error::invalid(field, format!("unknown status {value}"))),
    }
}

pub fn key_info(key: &StoredKey, now: DateTime<Utc>) -> pb::KeyInfo {
    pb::KeyInfo {
        id: key.id.to_string(),
        project: key.project.clone(),
        label: key.label.clone(),
        scopes: key.scopes.clone(),
        status: status(key.status(now)).into(),
        hint: key.hint.clone(),
        created_at: Some(timestamp(key.created_at)),
        expires_at: key.expires_at.map(timestamp),
        revoked_at: key.revoked_at.map(timestamp),
        metadata: key.metadata.clone().into_iter().collect(),
        updated_at: Some(timestamp(key.updated_at)),
        revoke_reason: key.revoke_reason.clone().unwrap_or_default(),
        replaced_by: key
            .replaced_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        replaces: key
            .replaces
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        rate_limit: key.rate_limit.as_ref().map(rate_limit_to_pb),
        quota: key.quota.as_ref().map(quota_to_pb),
        allowed_cidrs: key.allowed_cidrs.iter().map(ToString::to_string).collect(),
        last_used_at: key.last_used_at.map(timestamp),
    }
}

fn std_duration(d: std::time::Duration) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn to_std(field: &str, d: &pbjson_types::Duration) -> Result<std::time::Duration, Error> {
    from_duration(field, d)?
        .to_std()
        .map_err(|_| Error::invalid(field, "out of range"))
}

pub fn rate_limit_to_pb(limit: &RateLimit) -> pb::RateLimit {
    pb::RateLimit {
        limit: limit.limit,
        period: Some(std_duration(limit.period)),
        burst: limit.burst,
    }
}

pub fn quota_to_pb(quota: &Quota) -> pb::Quota {
    let period = match quota.period {
        QuotaPeriod::Day => pb::quota::Period::Day,
        QuotaPeriod::Month => pb::quota::Period::Month,
        QuotaPeriod::Credits => pb::quota::Period::Credits,
    };
    pb::Quota {
        limit: quota.limit,
        period: period.into(),
        refill_amount: quota.refill_amount,
        refill_interval: (!quota.refill_interval.is_zero())
            .then(|| std_duration(quota.refill_interval)),
    }
}

pub fn rate_limit(field: &str, limit: &pb::RateLimit) -> Result<RateLimit, Error> {
    let period = match &limit.period {
        None => std::time::Duration::from_secs(1),
        Some(d) => to_std(&format!("{field}.period"), d)?,
    };
    let limit = RateLimit {
        limit: limit.limit,
        period,
        burst: limit.burst.max(1),
    };
    validate::rate_limit(field, &limit)?;
    Ok(limit)
}

pub fn quota(field: &str, quota: &pb::Quota) -> Result<Quota, Error> {
    if quota.limit < 1 {
        return Err(Error::invalid(
            format!("{field}.limit"),
            "must be at least 1",
        ));
    }
    let period = match pb::quota::Period::try_from(quota.period) {
        Ok(pb::quota::Period::Day) => QuotaPeriod::Day,
        Ok(pb::quota::Period::Month) => QuotaPeriod::Month,
        Ok(pb::quota::Period::Credits) => QuotaPeriod::Credits,
        _ => {
            return Err(Error::invalid(
                format!("{field}.period"),
                "one of PERIOD_DAY, PERIOD_MONTH, PERIOD_CREDITS",
            ));
        }
    };
    let refill_interval = match &quota.refill_interval {
        None => std::time::Duration::ZERO,
        Some(d) => to_std(&format!("{field}.refill_interval"), d)?,
    };
    let refills = quota.refill_amount != 0 || !refill_interval.is_zero();
    if refills {
        if period != QuotaPeriod::Credits {
            return Err(Error::invalid(
                format!("{field}.refill_amount"),
                "only credits refill",
            ));
        }
        if quota.refill_amount < 1 {
            return Err(Error::invalid(
                format!("{field}.refill_amount"),
                "must be at least 1 with a refill interval",
            ));
        }
        if refill_interval < std::time::Duration::from_secs(1) {
            return Err(Error::invalid(
                format!("{field}.refill_interval"),
                "must be at least 1 s with a refill amount",
            ));
        }
    }
    let quota = Quota {
        limit: quota.limit,
        period,
        refill_amount: quota.refill_amount,
        refill_interval,
    };
    validate::quota(field, &quota)?;
    Ok(quota)
}

pub fn verify_response(verdict: &Verdict) -> pb::VerifyResponse {
    let mut response = pb::VerifyResponse {
        allowed: verdict.allowed(),
        reason: reason(verdict.reason).into(),
        ..Default::default()
    };
    if let Some(record) = &verdict.record {
        response.key_id = record.id.to_string();
        response.project = record.project.to_string();
        response.scopes = record.scopes.iter().map(|s| s.to_string()).collect();
        response.expires_at = record.expires_at.map(timestamp);
    }
    response.retry_after = verdict.retry_after.map(std_duration);
    response.quota_remaining = verdict.quota_remaining;
    response
}

/// Page tokens are opaque to clients; a version tag lets the format change.
const PAGE_TOKEN_VERSION: &str = "1:";

pub fn page_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PAGE_TOKEN_VERSION}{last}"))
}

pub fn parse_page_token(field: &str, token: &str) -> Result<Option<String>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid(field, "not a token this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let cursor = text.strip_prefix(PAGE_TOKEN_VERSION).ok_or_else(invalid)?;
    Ok(Some(cursor.to_owned()))
}

pub fn key_page_cursor(field: &str, token: &str) -> Result<Option<KeyId>, Error> {
    parse_page_token(field, token)?
        .map(|c| {
            c.parse()
                .map_err(|_| Error::invalid(field, "not a token this server issued"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_reject_bad_nanos() {
        let now = store::precision::now();
        assert_eq!(from_timestamp("t", &timestamp(now)).unwrap(), now);
        // Finer than the store keeps: truncated on the way in.
        let fine = Timestamp {
            seconds: 10,
            nanos: 123_456_789,
        };
        assert_eq!(
            from_timestamp("t", &fine).unwrap().timestamp_subsec_nanos(),
            123_456_000
        );
        let bad = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert!(from_timestamp("t", &bad).is_err());
        let at = |seconds| Timestamp { seconds, nanos: 0 };
        assert!(from_timestamp("t", &at(253_402_300_799)).is_ok());
        for out in [253_402_300_800, -1, 200_000 * 31_556_952] {
            assert!(
                matches!(from_timestamp("expires_at", &at(out)), Err(Error::InvalidArgument { field, .. }) if field == "expires_at"),
                "{out}"
            );
        }
    }

    #[test]
    fn durations_must_not_be_negative() {
        let d = pbjson_types::Duration {
            seconds: 90,
            nanos: 5,
        };
        assert_eq!(
            from_duration("g", &d).unwrap(),
            Duration::seconds(90) + Duration::nanoseconds(5)
        );
        assert!(
            from_duration(
                "g",
                &pbjson_types::Duration {
                    seconds: -1,
                    nanos: 0
                }
            )
            .is_err()
        );
    }

    #[test]
    fn rate_limits_are_checked() {
        let ok = pb::RateLimit {
            limit: 100,
            period: None,
            burst: 10,
        };
        let limit = rate_limit("rate_limit", &ok).unwrap();
        assert_eq!(limit.period, std::time::Duration::from_secs(1));
        assert_eq!(rate_limit_to_pb(&limit).limit, 100);
        let zero = pb::RateLimit { limit: 0, ..ok };
        assert!(
            matches!(rate_limit("rate_limit", &zero), Err(Error::InvalidArgument { field, .. }) if field == "rate_limit.limit")
        );
        let long = pb::RateLimit {
            period: Some(pbjson_types::Duration {
                seconds: 90_000,
                nanos: 0,
            }),
            ..ok
        };
        assert!(rate_limit("rate_limit", &long).is_err());
        assert_eq!(
            rate_limit("r", &pb::RateLimit { burst: 0, ..ok })
                .unwrap()
                .burst,
            1
        );
    }

    #[test]
    fn quotas_are_checked() {
        let day = pb::Quota {
            limit: 500,
            period: pb::quota::Period::Day as i32,
            ..Default::default()
        };
        assert_eq!(quota("quota", &day).unwrap().period, QuotaPeriod::Day);
        let unspecified = pb::Quota { period: 0, ..day };
        assert!(quota("quota", &unspecified).is_err());
        let refilled_day = pb::Quota {
            refill_amount: 5,
            ..day
        };
        assert!(
            quota("quota", &refilled_day).is_err(),
            "only credits refill"
        );
        let credits = pb::Quota {
            limit: 10,
            period: pb::quota::Period::Credits as i32,
            refill_amount: 1,
            refill_interval: Some(pbjson_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        };
        let q = quota("quota", &credits).unwrap();
        assert!(q.refills());
        assert_eq!(quota_to_pb(&q), credits);
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let id = KeyId::generate();
        let token = page_token(id.as_str());
        assert_eq!(key_page_cursor("page_token", &token).unwrap(), Some(id));
        assert_eq!(key_page_cursor("page_token", "").unwrap(), None);
        assert!(key_page_cursor("page_token", "!!!").is_err());
        assert!(key_page_cursor("page_token", &URL_SAFE_NO_PAD.encode("2:x")).is_err());
        assert!(key_page_cursor("page_token", &page_token("not-an-id")).is_err());
    }
}
