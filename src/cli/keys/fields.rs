//! Flags that more than one command shares: a key's expiry and metadata.

use std::{collections::HashMap, time::Duration};

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::proto::timestamp::Timestamp;

#[derive(Args, Debug)]
pub(super) struct ExpiryArgs {
    /// Make the key expire this long from now, e.g. `30d` or `12h`.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        conflicts_with = "expires_at"
    )]
    pub(super) expires_in: Option<Duration>,

    /// Make the key expire at this time, e.g. `2030-01-31T00:00:00Z`.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub(super) expires_at: Option<DateTime<Utc>>,
}

impl ExpiryArgs {
    pub(super) fn resolve(&self, now: DateTime<Utc>) -> Result<Option<Timestamp>> {
        let at = match (self.expires_in, self.expires_at) {
            (Some(after), _) => chrono::Duration::from_std(after)
                .ok()
                .and_then(|after| now.checked_add_signed(after))
                .ok_or_else(|| anyhow!("--expires-in is too long"))?,
            (None, Some(at)) => at,
            (None, None) => return Ok(None),
        };
        Ok(Some(Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }))
    }
}

pub(super) fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some(("", _)) => Err("the key before `=` is empty".to_owned()),
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => Err("expected KEY=VALUE".to_owned()),
    }
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2030-01-31T00:00:00Z"))
}

// A map would silently keep only the last of two values for one key.
pub(super) fn metadata(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        if map.contains_key(&key) {
            bail!("metadata key {key:?} is given twice");
        }
        map.insert(key, value);
    }
    Ok(map)
}
