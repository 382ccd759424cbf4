//! How values read on a page: times, states, durations, limits.

use chrono::{DateTime, Utc};

use crate::{
    http::console::html::esc,
    proto::{timestamp::Timestamp, v1 as pb},
};

pub fn time(ts: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    ts.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// `<time>` with the absolute time, and how long ago or ahead in words.
pub fn when_rel(ts: Option<&Timestamp>, dash: &str, now: DateTime<Utc>) -> String {
    let Some(at) = time(ts) else {
        return esc(dash);
    };
    let seconds = (now - at).num_seconds();
    let words = if seconds >= 0 {
        format!("{} ago", span(seconds))
    } else {
        format!("in {}", span(-seconds))
    };
    format!(
        "<time datetime=\"{}\" title=\"{}\">{words}</time>",
        at.to_rfc3339(),
        at.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

fn span(seconds: i64) -> String {
    match seconds {
        s if s < 60 => "moments".to_owned(),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub fn status(value: i32) -> &'static str {
    match pb::KeyStatus::try_from(value) {
        Ok(pb::KeyStatus::Active) => "active",
        Ok(pb::KeyStatus::Rotating) => "rotating",
        Ok(pb::KeyStatus::Revoked) => "revoked",
        Ok(pb::KeyStatus::Expired) => "expired",
        _ => "unknown",
    }
}

/// A status as a badge.
pub fn badge(value: i32) -> String {
    let name = status(value);
    format!("<span class=\"badge {name}\">{name}</span>")
}

pub fn duration(d: Option<&pbjson_types::Duration>) -> String {
    match d {
        Some(d) => humantime::format_duration(std::time::Duration::new(
            d.seconds.max(0) as u64,
            d.nanos.max(0) as u32,
        ))
        .to_string(),
        None => "1s".to_owned(),
    }
}

pub fn rate_limit(limit: Option<&pb::RateLimit>) -> String {
    match limit {
        Some(l) => format!(
            "{} per {}, burst {}",
            l.limit,
            duration(l.period.as_ref()),
            l.burst.max(1)
        ),
        None => "none".to_owned(),
    }
}

pub fn quota_period(period: i32) -> &'static str {
    match pb::quota::Period::try_from(period) {
        Ok(pb::quota::Period::Day) => "day",
        Ok(pb::quota::Period::Month) => "month",
        Ok(pb::quota::Period::Credits) => "credits",
        _ => "",
    }
}

pub fn quota(quota: Option<&pb::Quota>) -> String {
    match quota {
        Some(q) if q.period == pb::quota::Period::Credits as i32 => {
            let refill = if q.refill_amount > 0 {
                format!(
                    ", +{} every {}",
                    q.refill_amount,
                    duration(q.refill_interval.as_ref())
                )
            } else {
                String::new()
            };
            format!("{} credits{refill}", q.limit)
        }
        Some(q) => format!("{} calls per {}", q.limit, quota_period(q.period)),
        None => "none".to_owned(),
    }
}

/// A list of words as `<code>` items, or `dash`.
pub fn codes(items: &[String], dash: &str) -> String {
    if items.is_empty() {
        return esc(dash);
    }
    items
        .iter()
        .map(|s| format!("<code>{}</code>", esc(s)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_words() {
        let now = DateTime::from_timestamp(10_000, 0).unwrap();
        let ts = Timestamp {
            seconds: 10_000 - 7200,
            nanos: 0,
        };
        assert!(when_rel(Some(&ts), "-", now).contains(">2 h ago<"));
        assert_eq!(when_rel(None, "never", now), "never");
    }

    #[test]
    fn limits_read_as_words() {
        let limit = pb::RateLimit {
            limit: 10,
            period: Some(pbjson_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            burst: 0,
        };
        assert_eq!(rate_limit(Some(&limit)), "10 per 1m, burst 1");
        let q = pb::Quota {
            limit: 5,
            period: pb::quota::Period::Day as i32,
            ..Default::default()
        };
        assert_eq!(quota(Some(&q)), "5 calls per day");
    }
}
