//! Flags for a key's traffic limits, shared by `keys issue` and `keys update`.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::proto::v1 as pb;

#[derive(Args, Debug, Default)]
pub struct LimitArgs {
    /// Rate limit as CALLS/PERIOD, e.g. `100/s`, `600/1m`, `10000/1h`.
    #[arg(long, value_name = "CALLS/PERIOD", value_parser = parse_rate)]
    rate_limit: Option<(u32, Duration)>,

    /// Calls allowed at once above the rate (default 1); needs --rate-limit.
    #[arg(long, value_name = "CALLS", requires = "rate_limit")]
    burst: Option<u32>,

    /// Quota as CALLS/day, CALLS/month, or CREDITS/credits, e.g. `500/day`.
    #[arg(long, value_name = "CALLS/PERIOD", value_parser = parse_quota)]
    quota: Option<(i64, pb::quota::Period)>,

    /// Credits only: give back AMOUNT credits every INTERVAL, e.g. `100/1h`.
    #[arg(long, value_name = "AMOUNT/INTERVAL", value_parser = parse_refill, requires = "quota")]
    refill: Option<(i64, Duration)>,

    /// Address range the key may be used from, e.g. `10.0.0.0/8` or a single
    /// address; repeat for more. Without any, the key works from anywhere.
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    allowed_cidrs: Vec<String>,
}

/// A duration on the wire; `None` past what its `i64` seconds hold (pbjson's
/// `From` would wrap around to a negative one).
pub(crate) fn wire_duration(d: std::time::Duration) -> Option<pbjson_types::Duration> {
    i64::try_from(d.as_secs()).ok()?;
    Some(d.into())
}

impl LimitArgs {
    pub fn rate_limit(&self) -> Option<pb::RateLimit> {
        self.rate_limit.map(|(limit, period)| pb::RateLimit {
            limit,
            period: wire_duration(period),
            burst: self.burst.unwrap_or(1),
        })
    }

    pub fn quota(&self) -> Result<Option<pb::Quota>> {
        let Some((limit, period)) = self.quota else {
            return Ok(None);
        };
        if self.refill.is_some() && period != pb::quota::Period::Credits {
            bail!("--refill only applies to a credits quota, e.g. --quota 1000/credits");
        }
        Ok(Some(pb::Quota {
            limit,
            period: period.into(),
            refill_amount: self.refill.map_or(0, |(amount, _)| amount),
            refill_interval: self.refill.and_then(|(_, every)| wire_duration(every)),
        }))
    }

    pub fn allowed_cidrs(&self) -> Vec<String> {
        self.allowed_cidrs.clone()
    }

    /// The UpdateKey mask paths these flags set.
    pub fn paths(&self) -> Vec<&'static str> {
        let mut paths = Vec::new();
        if self.rate_limit.is_some() {
            paths.push("rate_limit");
        }
        if self.quota.is_some() {
            paths.push("quota");
        }
        if !self.allowed_cidrs.is_empty() {
            paths.push("allowed_cidrs");
        }
        paths
    }
}

fn split(text: &str) -> Result<(&str, &str), String> {
    text.split_once('/')
        .ok_or_else(|| "expected NUMBER/PERIOD".to_owned())
}

fn period(text: &str) -> Result<Duration, String> {
    match text {
        "s" | "sec" | "second" => Ok(Duration::from_secs(1)),
        "m" | "min" | "minute" => Ok(Duration::from_secs(60)),
        "h" | "hour" => Ok(Duration::from_secs(3600)),
        "d" | "day" => Ok(Duration::from_secs(86_400)),
        other => humantime::parse_duration(other).map_err(|e| format!("{e}; e.g. s, 1m, 10s")),
    }
}

fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let (calls, per) = split(text)?;
    let calls = calls
        .parse()
        .map_err(|_| "the number of calls must be a positive integer".to_owned())?;
    Ok((calls, period(per)?))
}

fn parse_quota(text: &str) -> Result<(i64, pb::quota::Period), String> {
    let (calls, per) = split(text)?;
    let calls = calls
        .parse()
        .map_err(|_| "the number of calls must be a positive integer".to_owned())?;
    let period = match per {
        "day" | "d" => pb::quota::Period::Day,
        "month" | "mo" => pb::quota::Period::Month,
        "credits" => pb::quota::Period::Credits,
        _ => return Err("the period is day, month or credits".to_owned()),
    };
    Ok((calls, period))
}

fn parse_refill(text: &str) -> Result<(i64, Duration), String> {
    let (amount, every) = split(text)?;
    let amount = amount
        .parse()
        .map_err(|_| "the amount must be a positive integer".to_owned())?;
    Ok((amount, period(every)?))
}

/// Flags that remove limits, for `keys update`.
#[derive(Args, Debug, Default)]
pub struct ClearLimitArgs {
    /// Remove the rate limit.
    #[arg(long, conflicts_with = "rate_limit")]
    no_rate_limit: bool,

    /// Remove the quota.
    #[arg(long, conflicts_with = "quota")]
    no_quota: bool,

    /// Let the key be used from any address.
    #[arg(long, conflicts_with = "allowed_cidrs")]
    clear_cidrs: bool,
}

impl ClearLimitArgs {
    pub fn paths(&self) -> Vec<&'static str> {
        [
            (self.no_rate_limit, "rate_limit"),
            (self.no_quota, "quota"),
            (self.clear_cidrs, "allowed_cidrs"),
        ]
        .into_iter()
        .filter_map(|(set, path)| set.then_some(path))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_quotas_parse() {
        assert_eq!(parse_rate("100/s").unwrap(), (100, Duration::from_secs(1)));
        assert_eq!(
            parse_rate("600/1m").unwrap(),
            (600, Duration::from_secs(60))
        );
        assert!(parse_rate("fast").is_err());
        assert_eq!(
            parse_quota("500/day").unwrap(),
            (500, pb::quota::Period::Day)
        );
        assert_eq!(
            parse_quota("9/credits").unwrap().1,
            pb::quota::Period::Credits
        );
        assert!(parse_quota("5/week").is_err());
        assert_eq!(
            parse_refill("10/1h").unwrap(),
            (10, Duration::from_secs(3600))
        );
    }

    #[test]
    fn refill_needs_credits() {
        let args = LimitArgs {
            quota: Some((5, pb::quota::Period::Day)),
            refill: Some((1, Duration::from_secs(60))),
            ..Default::default()
        };
        assert!(args.quota().is_err());
    }

    #[test]
    fn flags_name_their_mask_paths() {
        let args = LimitArgs {
            rate_limit: Some((1, Duration::from_secs(1))),
            allowed_cidrs: vec!["10.0.0.0/8".into()],
            ..Default::default()
        };
        assert_eq!(args.paths(), vec!["rate_limit", "allowed_cidrs"]);
        assert_eq!(args.rate_limit().unwrap().burst, 1);
        let clear = ClearLimitArgs {
            no_quota: true,
            ..Default::default()
        };
        assert_eq!(clear.paths(), vec!["quota"]);
    }
}
