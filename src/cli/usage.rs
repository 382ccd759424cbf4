//! `keyward keys usage`: a key's or a project's calls over time, as a
//! terminal sparkline and a table, or as JSON.

use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;

use super::{
    audit::{When, parse_when},
    output::{Table, clean, time_text},
};
use crate::{
    grpc::convert,
    proto::{timestamp::Timestamp, v1 as pb},
};

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

#[derive(Args, Debug)]
pub(super) struct UsageArgs {
    /// The key whose usage to show (`key_...`); or use --project.
    #[arg(
        value_name = "KEY_ID",
        required_unless_present = "project",
        conflicts_with = "project"
    )]
    key_id: Option<String>,

    /// Show a whole project's usage and its busiest keys.
    #[arg(long)]
    project: Option<String>,

    /// Start of the range: RFC 3339 (`2030-01-31T00:00:00Z`) or a duration
    /// ago (`6h`, `7d`). Default: 24 hours before --until.
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    since: Option<When>,

    /// End of the range (same forms as --since). Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    until: Option<When>,

    /// Bucket size: 1m, 1h or 1d. Default: the server picks one that gives
    /// at most a few hundred buckets. Minute buckets exist for 48 hours.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    bucket: Option<Duration>,

    /// How many of a project's busiest keys to show, 1 to 100 (default 10).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=100))]
    top: Option<i32>,

    /// Print every bucket, empty ones included (default: only buckets
    /// with calls).
    #[arg(long)]
    all_buckets: bool,
}

impl UsageArgs {
    pub(super) fn request(&self, now: DateTime<Utc>) -> Result<pb::GetUsageRequest> {
        let time = |w: &Option<When>| -> Result<Option<Timestamp>> {
            w.as_ref()
                .map(|w| w.resolve(now).map(convert::timestamp))
                .transpose()
        };
        let bucket = match self.bucket.map(|b| b.as_secs()) {
            None => None,
            Some(s @ (60 | 3_600 | 86_400)) => Some(pbjson_types::Duration {
                seconds: s as i64,
                nanos: 0,
            }),
            Some(_) => bail!("--bucket must be 1m, 1h or 1d"),
        };
        Ok(pb::GetUsageRequest {
            key_id: self.key_id.clone().unwrap_or_default(),
            project: self.project.clone().unwrap_or_default(),
            since: time(&self.since)?,
            until: time(&self.until)?,
            bucket,
            top_keys: self.top.unwrap_or(0),
        })
    }

    pub(super) fn all_buckets(&self) -> bool {
        self.all_buckets
    }
}

/// One character per bucket, scaled to the busiest bucket; a bucket with
/// no calls is a space, so quiet stretches show.
pub(super) fn sparkline(totals: &[i64]) -> String {
    let max = totals.iter().copied().max().unwrap_or(0);
    totals
        .iter()
        .map(|&t| match t {
            0 => ' ',
            t => {
                let bars = BARS.len() as i64;
                // ceil(t / max × bars) - 1: the busiest bucket gets the full bar.
                let level = ((t * bars + max - 1) / max - 1) as usize;
                BARS[level.min(BARS.len() - 1)]
            }
        })
        .collect()
}

fn reasons(point: &pb::UsagePoint) -> String {
    let mut reasons: Vec<_> = point.denied_by_reason.iter().collect();
    reasons.sort();
    reasons
        .iter()
        .map(|(reason, calls)| format!("{} {calls}", clean(reason)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn text(response: &pb::GetUsageResponse, all_buckets: bool) -> String {
    let totals: Vec<i64> = response
        .series
        .iter()
        .map(|p| p.allowed + p.denied)
        .collect();
    let allowed: i64 = response.series.iter().map(|p| p.allowed).sum();
    let denied: i64 = response.series.iter().map(|p| p.denied).sum();
    let bucket = response.bucket.as_ref().map_or(0, |b| b.seconds);
    let from = response.series.first().and_then(|p| p.start.as_ref());
    let to = response
        .series
        .last()
        .and_then(|p| p.start.as_ref())
        .map(|s| Timestamp {
            seconds: s.seconds + bucket,
            nanos: 0,
        });
    let mut out = format!(
        "{} to {} in {bucket}s buckets: {allowed} allowed, {denied} denied\n|{}|\n\n",
        time_text(from, "-"),
        time_text(to.as_ref(), "-"),
        sparkline(&totals)
    );
    let mut table = Table::with_header(&["BUCKET", "ALLOWED", "DENIED", "REASONS"]);
    for point in response
        .series
        .iter()
        .filter(|p| all_buckets || p.allowed + p.denied > 0)
    {
        table.row(vec![
            time_text(point.start.as_ref(), "-"),
            point.allowed.to_string(),
            point.denied.to_string(),
            reasons(point),
        ]);
    }
    out.push_str(&table.render());
    if !response.busiest_keys.is_empty() {
        out.push_str("\nbusiest keys:\n");
        let mut keys = Table::with_header(&["KEY ID", "LABEL", "ALLOWED", "DENIED"]);
        for key in &response.busiest_keys {
            keys.row(vec![
                clean(&key.key_id),
                clean(&key.label),
                key.allowed.to_string(),
                key.denied.to_string(),
            ]);
        }
        out.push_str(&keys.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_busiest_bucket_and_blanks_empty_ones() {
        assert_eq!(sparkline(&[0, 1, 8, 4]), " ▁█▄");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[5, 5]), "██");
    }

    #[test]
    fn text_lists_buckets_with_calls_and_their_reasons() {
        let point = |s: i64, allowed: i64, denied: &[(&str, i64)]| pb::UsagePoint {
            start: Some(Timestamp {
                seconds: s,
                nanos: 0,
            }),
            allowed,
            denied: denied.iter().map(|(_, c)| c).sum(),
            denied_by_reason: denied.iter().map(|(r, c)| ((*r).to_owned(), *c)).collect(),
        };
        let response = pb::GetUsageResponse {
            series: vec![
                point(0, 3, &[("REVOKED", 1)]),
                point(60, 0, &[]),
                point(120, 1, &[]),
            ],
            busiest_keys: vec![],
            bucket: Some(pbjson_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        };
        let text = text(&response, false);
        assert!(text.contains("4 allowed, 1 denied"), "{text}");
        assert!(text.contains("|█ ▂|"), "{text}");
        assert!(text.contains("REVOKED 1"), "{text}");
        // The first line is the header with the range.
        let rows = |t: &str| t.lines().skip(1).filter(|l| l.starts_with("1970-")).count();
        assert_eq!(rows(&text), 2, "{text}");
        assert_eq!(rows(&super::text(&response, true)), 3);
    }
}
