//! `keys issue` and `keys rotate`: the commands that mint a secret.

use std::time::Duration;

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use clap::Args;

use super::fields::{ExpiryArgs, metadata, parse_pair};
use crate::{cli::limits::LimitArgs, proto::v1 as pb};

#[derive(Args, Debug)]
pub(super) struct IssueArgs {
    /// Project that will own the key; it also names the key's prefix.
    #[arg(long)]
    pub(super) project: String,

    /// Name of the key, unique among the project's live keys.
    #[arg(long)]
    pub(super) label: String,

    /// Scope to grant, e.g. `orders:read` or `orders:*`; repeat for more.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(super) scopes: Vec<String>,

    #[command(flatten)]
    pub(super) expiry: ExpiryArgs,

    /// Metadata pair to keep with the key, e.g. `owner=ana`; repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub(super) metadata: Vec<(String, String)>,

    #[command(flatten)]
    pub(super) limits: LimitArgs,
}

#[derive(Args, Debug)]
pub(super) struct RotateArgs {
    /// Id of the key to replace.
    pub(super) key_id: String,

    /// How long the old key keeps working, e.g. `1h`; `0s` ends it at once
    /// (default: the server's, 24 hours).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(super) grace: Option<Duration>,
}

// On stderr, so that `keyward keys issue ... > key.txt` captures only the
// secret's line and the details.
pub(super) fn shown_once() {
    eprintln!("The secret key below is shown only once: store it now.");
}

pub(super) fn issue_request(args: IssueArgs, now: DateTime<Utc>) -> Result<pb::IssueRequest> {
    Ok(pb::IssueRequest {
        project: args.project,
        label: args.label,
        scopes: args.scopes,
        expires_at: args.expiry.resolve(now)?,
        metadata: metadata(args.metadata)?,
        rate_limit: args.limits.rate_limit(),
        quota: args.limits.quota()?,
        allowed_cidrs: args.limits.allowed_cidrs(),
    })
}

pub(super) fn rotate_request(args: RotateArgs) -> Result<pb::RotateRequest> {
    let grace_period = args
        .grace
        .map(|grace| crate::cli::limits::wire_duration(grace).ok_or(()))
        .transpose()
        .map_err(|()| anyhow!("--grace is too long"))?;
    Ok(pb::RotateRequest {
        key_id: args.key_id,
        grace_period,
    })
}
