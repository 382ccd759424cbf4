//! `keys update` and `keys revoke`: changing a key that exists.

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;

use super::fields::{ExpiryArgs, metadata, parse_pair};
use crate::{
    cli::limits::{ClearLimitArgs, LimitArgs},
    proto::v1 as pb,
};

#[derive(Args, Debug)]
pub(super) struct UpdateArgs {
    /// Id of the key to change.
    pub(super) key_id: String,

    /// New label.
    #[arg(long)]
    pub(super) label: Option<String>,

    /// Scope to grant; repeat for more. The scopes given replace all current ones.
    #[arg(long = "scope", value_name = "SCOPE", conflicts_with = "clear_scopes")]
    pub(super) scopes: Vec<String>,

    /// Remove every scope.
    #[arg(long)]
    pub(super) clear_scopes: bool,

    #[command(flatten)]
    pub(super) expiry: ExpiryArgs,

    /// Make the key never expire.
    #[arg(long, conflicts_with_all = ["expires_in", "expires_at"])]
    pub(super) no_expiry: bool,

    /// Metadata pair, e.g. `owner=ana`; repeat for more. The pairs given
    /// replace all current metadata.
    #[arg(
        long = "meta",
        value_name = "KEY=VALUE",
        value_parser = parse_pair,
        conflicts_with = "clear_metadata"
    )]
    pub(super) metadata: Vec<(String, String)>,

    /// Remove all metadata.
    #[arg(long)]
    pub(super) clear_metadata: bool,

    #[command(flatten)]
    pub(super) limits: LimitArgs,

    #[command(flatten)]
    pub(super) clear_limits: ClearLimitArgs,
}

#[derive(Args, Debug)]
pub(super) struct RevokeArgs {
    /// Id of the key to revoke.
    pub(super) key_id: String,

    /// Why, for the audit trail (shown as the key's revoke_reason).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub(super) reason: String,
}

/// The mask names exactly the fields whose flags were given, since the
/// server sets every masked field, absent values included.
pub(super) fn update_request(args: UpdateArgs, now: DateTime<Utc>) -> Result<pb::UpdateKeyRequest> {
    let expires_at = args.expiry.resolve(now)?;
    let mut paths = Vec::new();
    if args.label.is_some() {
        paths.push("label");
    }
    if !args.scopes.is_empty() || args.clear_scopes {
        paths.push("scopes");
    }
    if expires_at.is_some() || args.no_expiry {
        paths.push("expires_at");
    }
    if !args.metadata.is_empty() || args.clear_metadata {
        paths.push("metadata");
    }
    paths.extend(args.limits.paths());
    paths.extend(args.clear_limits.paths());
    if paths.is_empty() {
        bail!(
            "nothing to update: give --label, --scope, --clear-scopes, --expires-in, \
             --expires-at, --no-expiry, --meta, --clear-metadata, --rate-limit, \
             --no-rate-limit, --quota, --no-quota, --allow-cidr or --clear-cidrs"
        );
    }
    Ok(pb::UpdateKeyRequest {
        key_id: args.key_id,
        label: args.label.unwrap_or_default(),
        scopes: args.scopes,
        expires_at,
        metadata: metadata(args.metadata)?,
        rate_limit: args.limits.rate_limit(),
        quota: args.limits.quota()?,
        allowed_cidrs: args.limits.allowed_cidrs(),
        update_mask: Some(pbjson_types::FieldMask {
            paths: paths.into_iter().map(str::to_owned).collect(),
        }),
    })
}
