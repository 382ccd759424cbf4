//! `GetUsage` without the wire: checks the request, reads the store and
//! fills the series, empty buckets included.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::{
    admin::Actor,
    error::Error,
    store::{KeyStore, KeyTotals, UsageOwner, UsageQuery, usage::ALLOWED},
};

/// The bucket sizes keyward answers with, in seconds.
pub const BUCKETS: [i64; 3] = [60, 3_600, 86_400];
/// Points a series may have; a longer range needs a larger bucket.
pub const MAX_POINTS: i64 = 10_000;
/// Points an automatically chosen bucket aims to stay under.
const AUTO_POINTS: i64 = 360;
pub const DEFAULT_TOP_KEYS: u32 = 10;
pub const MAX_TOP_KEYS: u32 = 100;

#[derive(Debug, Clone)]
pub struct UsageRequest {
    pub owner: UsageOwner,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Seconds; `None` picks one.
    pub bucket: Option<i64>,
    /// 0 means the default.
    pub top_keys: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Point {
    pub start: DateTime<Utc>,
    pub allowed: i64,
    /// Reason name (`ok` excluded) → calls.
    pub denied: BTreeMap<String, i64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub series: Vec<Point>,
    pub busiest: Vec<KeyTotals>,
    pub bucket_seconds: i64,
}

/// The range and bucket a request asks for, checked.
fn plan(request: &UsageRequest, now: DateTime<Utc>) -> Result<(UsageQuery, i64), Error> {
    let until = request.until.unwrap_or(now);
    let since = request.since.unwrap_or_else(|| {
        until
            .checked_sub_signed(Duration::hours(24))
            .unwrap_or(crate::validate::MIN_TIME)
    });
    if since >= until {
        return Err(Error::invalid("since", "must be before until"));
    }
    let seconds = (until - since).num_seconds().max(1);
    let bucket = match request.bucket {
        Some(b) if BUCKETS.contains(&b) => b,
        Some(_) => return Err(Error::invalid("bucket", "one of 60s, 3600s or 86400s")),
        None => BUCKETS
            .into_iter()
            .find(|b| seconds / b <= AUTO_POINTS)
            .unwrap_or(86_400),
    };
    if seconds / bucket > MAX_POINTS {
        return Err(Error::invalid(
            "bucket",
            format!(
                "the range would need more than {MAX_POINTS} buckets of {bucket}s; use a larger bucket"
            ),
        ));
    }
    let query = UsageQuery {
        owner: request.owner.clone(),
        since,
        until,
    };
    Ok((query, bucket))
}

/// Buckets from the one holding `since` to the one holding the instant
/// before `until`, with the store's figures filled in.
fn fill(
    query: &UsageQuery,
    bucket: i64,
    rows: Vec<crate::store::UsageBucket>,
) -> Result<Vec<Point>, Error> {
    let first = query.since.timestamp().div_euclid(bucket) * bucket;
    // In microseconds: `until` is usually now, and truncated to its second
    // it would leave out the bucket just begun (the store still returns
    // its rows, `minute < until`), losing its calls from the series.
    let last = (query.until.timestamp_micros() - 1).div_euclid(bucket * 1_000_000) * bucket;
    let mut points: Vec<Point> = (0..=(last - first) / bucket)
        .map(|i| {
            DateTime::from_timestamp(first + i * bucket, 0)
                .map(|start| Point {
                    start,
                    ..Default::default()
                })
                .ok_or_else(|| Error::invalid("since", "out of range"))
        })
        .collect::<Result<_, _>>()?;
    for row in rows {
        let index = (row.start.timestamp() - first).div_euclid(bucket);
        let Some(point) = usize::try_from(index).ok().and_then(|i| points.get_mut(i)) else {
            continue;
        };
        if row.outcome == ALLOWED {
            point.allowed += row.calls;
        } else {
            *point.denied.entry(row.outcome).or_default() += row.calls;
        }
    }
    Ok(points)
}

/// Answers a usage request for `actor`: a key's usage needs reach over the
/// key's project, a project's over that project.
pub async fn report(
    store: &dyn KeyStore,
    actor: &Actor,
    request: UsageRequest,
) -> Result<Report, Error> {
    if request.top_keys > MAX_TOP_KEYS {
        return Err(Error::invalid(
            "top_keys",
            format!("at most {MAX_TOP_KEYS}"),
        ));
    }
    match &request.owner {
        UsageOwner::Key(id) => {
            let key = store
                .get(id)
                .await?
                .ok_or_else(|| Error::from(crate::store::StoreError::NotFound(id.clone())))?;
            actor.check_key(&key)?;
        }
        UsageOwner::Project(project) => actor.check_reach(project)?,
    }
    let (query, bucket) = plan(&request, Utc::now())?;
    let rows = store.usage_series(&query, bucket).await?;
    let series = fill(&query, bucket, rows)?;
    let busiest = match request.owner {
        UsageOwner::Key(_) => Vec::new(),
        UsageOwner::Project(_) => {
            let top = match request.top_keys {
                0 => DEFAULT_TOP_KEYS,
                n => n,
            };
            store.busiest_keys(&query, top).await?
        }
    };
    Ok(Report {
        series,
        busiest,
        bucket_seconds: bucket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UsageBucket;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn request(since: i64, until: i64, bucket: Option<i64>) -> UsageRequest {
        UsageRequest {
            owner: UsageOwner::Project("p".into()),
            since: Some(at(since)),
            until: Some(at(until)),
            bucket,
            top_keys: 0,
        }
    }

    #[test]
    fn the_automatic_bucket_keeps_series_short() {
        let now = at(1_000_000_000);
        let (_, b) = plan(&request(0, 3_600, None), now).unwrap();
        assert_eq!(b, 60);
        let (_, b) = plan(&request(0, 86_400, None), now).unwrap();
        assert_eq!(b, 3_600);
        let (_, b) = plan(&request(0, 86_400 * 90, None), now).unwrap();
        assert_eq!(b, 86_400);
        let defaults = UsageRequest {
            since: None,
            until: None,
            ..request(0, 1, None)
        };
        let (query, b) = plan(&defaults, now).unwrap();
        assert_eq!((query.until - query.since).num_hours(), 24);
        assert_eq!(b, 3_600);
    }

    #[test]
    fn bad_ranges_and_buckets_are_refused_by_field() {
        let now = at(1_000_000_000);
        let field = |r| match plan(&r, now) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(request(10, 10, None)), "since");
        assert_eq!(field(request(0, 100, Some(30))), "bucket");
        assert_eq!(field(request(0, 86_400 * 30, Some(60))), "bucket");
    }

    #[test]
    fn a_bucket_begun_less_than_a_second_before_until_is_kept() {
        let query = UsageQuery {
            owner: UsageOwner::Project("p".into()),
            since: at(0),
            until: at(120) + Duration::milliseconds(300),
        };
        let rows = vec![UsageBucket {
            start: at(120),
            outcome: "revoked".into(),
            calls: 3,
        }];
        let points = fill(&query, 60, rows).unwrap();
        let starts: Vec<i64> = points.iter().map(|p| p.start.timestamp()).collect();
        assert_eq!(starts, [0, 60, 120]);
        assert_eq!(points[2].denied, BTreeMap::from([("revoked".into(), 3)]));
        // An `until` on a bucket's first instant still ends the series
        // before that bucket.
        let query = UsageQuery {
            until: at(120),
            ..query
        };
        assert_eq!(fill(&query, 60, Vec::new()).unwrap().len(), 2);
    }

    #[test]
    fn fill_covers_the_range_with_zeros_and_splits_denials() {
        let query = UsageQuery {
            owner: UsageOwner::Project("p".into()),
            since: at(90),
            until: at(300),
        };
        let rows = vec![
            UsageBucket {
                start: at(120),
                outcome: "ok".into(),
                calls: 5,
            },
            UsageBucket {
                start: at(120),
                outcome: "revoked".into(),
                calls: 2,
            },
            UsageBucket {
                start: at(240),
                outcome: "rate_limited".into(),
                calls: 1,
            },
        ];
        let points = fill(&query, 60, rows).unwrap();
        let starts: Vec<i64> = points.iter().map(|p| p.start.timestamp()).collect();
        assert_eq!(starts, [60, 120, 180, 240]);
        assert_eq!(points[1].allowed, 5);
        assert_eq!(points[1].denied, BTreeMap::from([("revoked".into(), 2)]));
        assert_eq!(
            points[3].denied,
            BTreeMap::from([("rate_limited".into(), 1)])
        );
        assert_eq!(
            points[0],
            Point {
                start: at(60),
                ..Default::default()
            }
        );
    }
}
