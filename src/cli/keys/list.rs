//! `keys get` and `keys list`: reading keys, page by page.

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use crate::{
    cli::{
        client::{AdminKey, KeyClient, ResponseExt},
        output,
    },
    proto::v1 as pb,
};

#[derive(Args, Debug)]
pub(super) struct GetArgs {
    /// Id of the key (`key_...`).
    pub(super) key_id: String,
}

#[derive(Args, Debug)]
pub(super) struct ListArgs {
    /// Only keys of this project (default: every project the admin key reaches).
    #[arg(long)]
    pub(super) project: Option<String>,

    /// Only keys in this state.
    #[arg(long, value_enum)]
    pub(super) status: Option<StatusFilter>,

    /// Only keys with exactly this label.
    #[arg(long)]
    pub(super) label: Option<String>,

    /// Keys per page, 1 to 500 (server default: 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=500))]
    pub(super) page_size: Option<i32>,

    /// Start at this page: the token printed after the previous one.
    #[arg(long, value_name = "TOKEN")]
    pub(super) page_token: Option<String>,

    /// Follow page tokens until every matching key is listed.
    #[arg(long)]
    pub(super) all: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StatusFilter {
    /// Usable: not revoked, not expired.
    Active,
    /// Replaced by a rotation, usable until its grace period ends.
    Rotating,
    /// Revoked, or past its rotation grace period.
    Revoked,
    /// Past its expiry time.
    Expired,
}

impl From<StatusFilter> for pb::KeyStatus {
    fn from(status: StatusFilter) -> Self {
        match status {
            StatusFilter::Active => Self::Active,
            StatusFilter::Rotating => Self::Rotating,
            StatusFilter::Revoked => Self::Revoked,
            StatusFilter::Expired => Self::Expired,
        }
    }
}

pub(super) async fn list(
    client: &mut KeyClient,
    admin: &AdminKey,
    mut request: pb::ListKeysRequest,
    all: bool,
    json: bool,
) -> Result<String> {
    let mut keys = Vec::new();
    let next_page_token = loop {
        let response = client
            .list_keys(admin.request(request.clone()))
            .await
            .into_message()?;
        keys.extend(response.keys);
        let token = response.next_page_token;
        if !all || token.is_empty() {
            break token;
        }
        // A server that hands back the token it was given would loop forever.
        if token == request.page_token {
            bail!("the server returned the same page token twice");
        }
        request.page_token = token;
    };
    if json {
        return Ok(output::message_json(&pb::ListKeysResponse {
            keys,
            next_page_token,
        }));
    }
    if !next_page_token.is_empty() {
        eprintln!("more keys follow: add --page-token {next_page_token} (or use --all)");
    }
    if keys.is_empty() {
        eprintln!("no keys found");
        return Ok(String::new());
    }
    Ok(output::key_list(&keys))
}

pub(super) fn list_request(args: ListArgs) -> pb::ListKeysRequest {
    pb::ListKeysRequest {
        project: args.project.unwrap_or_default(),
        status: args
            .status
            .map_or(pb::KeyStatus::Unspecified, pb::KeyStatus::from)
            .into(),
        label: args.label.unwrap_or_default(),
        page_size: args.page_size.unwrap_or(0),
        page_token: args.page_token.unwrap_or_default(),
    }
}
