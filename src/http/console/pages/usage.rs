//! Usage reads for the pages: GetUsage over a window, as chart bars and
//! denial totals.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::text;
use crate::{
    grpc::convert,
    http::console::{chart::Bar, error::ConsoleError, rpc::Caller},
    proto::v1 as pb,
};

/// Whose usage.
#[derive(Clone, Copy)]
pub enum Whose<'a> {
    Key(&'a str),
    Project(&'a str),
}

/// Usage of `whose` in `[until - span, until)` in buckets of `bucket`
/// seconds, with the `top` busiest keys for a project.
pub async fn read(
    caller: &Caller,
    whose: Whose<'_>,
    until: DateTime<Utc>,
    span: Duration,
    bucket: i64,
    top: i32,
) -> Result<pb::GetUsageResponse, ConsoleError> {
    let (key_id, project) = match whose {
        Whose::Key(id) => (id.to_owned(), String::new()),
        Whose::Project(p) => (String::new(), p.to_owned()),
    };
    caller
        .usage(pb::GetUsageRequest {
            key_id,
            project,
            since: Some(convert::timestamp(until - span)),
            until: Some(convert::timestamp(until)),
            bucket: Some(pbjson_types::Duration {
                seconds: bucket,
                nanos: 0,
            }),
            top_keys: top,
        })
        .await
}

/// One bar per bucket, labelled with `format` (chrono) of its start.
pub fn bars(series: &[pb::UsagePoint], format: &str) -> Vec<Bar> {
    series
        .iter()
        .map(|p| Bar {
            label: text::time(p.start.as_ref())
                .map(|t| t.format(format).to_string())
                .unwrap_or_default(),
            allowed: p.allowed,
            denied: p.denied,
        })
        .collect()
}

/// Denied calls by reason over `series`, commonest first.
pub fn denials(series: &[pb::UsagePoint]) -> Vec<(String, i64)> {
    let mut totals = BTreeMap::<String, i64>::new();
    for point in series {
        for (reason, n) in &point.denied_by_reason {
            *totals.entry(reason.clone()).or_default() += n;
        }
    }
    let mut list: Vec<_> = totals.into_iter().filter(|(_, n)| *n > 0).collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_add_up_by_reason() {
        let point = |pairs: &[(&str, i64)]| pb::UsagePoint {
            denied_by_reason: pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            ..Default::default()
        };
        let list = denials(&[
            point(&[("REVOKED", 1), ("RATE_LIMITED", 2)]),
            point(&[("REVOKED", 3)]),
        ]);
        assert_eq!(
            list,
            [("REVOKED".to_owned(), 4), ("RATE_LIMITED".to_owned(), 2)]
        );
    }
}
