//! `keyward keys`: a command-line client for a running keyward server.
//!
//! Secrets never come from argv, which any local user can read with `ps`:
//! the admin key comes from `--admin-key-file` or `KEYWARD_ADMIN_KEY`, and the
//! key to verify from `--key-file` or `KEYWARD_KEY`.

use std::{collections::HashMap, net::IpAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::{
    client::{self, AdminKey, ConnectArgs, KeyClient, ResponseExt},
    limits::{ClearLimitArgs, LimitArgs},
    output::{self, json_text},
    usage::{self, UsageArgs},
};
use crate::proto::v1 as pb;

const KEY_ENV: &str = "KEYWARD_KEY";

// Global options are repeated in every subcommand's help; a heading of their
// own keeps them from interleaving with the subcommand's options.
pub(super) const CLIENT_OPTIONS: &str = "Client options";

const ADMIN_KEY_HELP: &str = "\
Every command except `verify` needs an admin key: the first line of \
--admin-key-file, else the KEYWARD_ADMIN_KEY environment variable. \
It is never taken from the command line.";

#[derive(Args, Debug)]
#[command(after_help = ADMIN_KEY_HELP)]
pub struct KeysArgs {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Print the response as JSON instead of a table.
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS)]
    json: bool,

    /// Read the admin key from the first line of this file (`-` for stdin)
    /// instead of KEYWARD_ADMIN_KEY.
    #[arg(long, global = true, value_name = "PATH", help_heading = CLIENT_OPTIONS)]
    admin_key_file: Option<PathBuf>,

    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Issue a key and print its secret, which is shown only this once.
    #[command(after_help = ADMIN_KEY_HELP)]
    Issue(IssueArgs),
    /// Show one key.
    #[command(after_help = ADMIN_KEY_HELP)]
    Get(GetArgs),
    /// List keys, newest first.
    #[command(after_help = ADMIN_KEY_HELP)]
    List(ListArgs),
    /// Change a key's label, scopes, expiry or metadata.
    #[command(after_help = ADMIN_KEY_HELP)]
    Update(UpdateArgs),
    /// Revoke a key at once.
    #[command(after_help = ADMIN_KEY_HELP)]
    Revoke(RevokeArgs),
    /// Replace a key with a new one and print the new secret.
    ///
    /// The new key has the old one's project, label, scopes and metadata; the
    /// old key keeps working until the grace period ends.
    #[command(after_help = ADMIN_KEY_HELP)]
    Rotate(RotateArgs),
    /// Show the calls made with a key, or with a project's keys, over time.
    ///
    /// Usage is written by each server every --usage-flush-interval (default
    /// 10s), so the latest calls show after the next flush.
    #[command(after_help = ADMIN_KEY_HELP)]
    Usage(UsageArgs),
    /// Ask the server whether a key may be used, as a service would.
    ///
    /// The key comes from --key-file or KEYWARD_KEY, never from the command
    /// line. No admin key is needed.
    #[command(after_help = "\
Exit status: 0 when the key is allowed; 1 when it is denied (the decision is \
still printed) or when the check could not be made.")]
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
struct IssueArgs {
    /// Project that will own the key; it also names the key's prefix.
    #[arg(long)]
    project: String,

    /// Name of the key, unique among the project's live keys.
    #[arg(long)]
    label: String,

    /// Scope to grant, e.g. `orders:read` or `orders:*`; repeat for more.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,

    #[command(flatten)]
    expiry: ExpiryArgs,

    /// Metadata pair to keep with the key, e.g. `owner=ana`; repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,

    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args, Debug)]
struct ExpiryArgs {
    /// Make the key expire this long from now, e.g. `30d` or `12h`.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        conflicts_with = "expires_at"
    )]
    expires_in: Option<Duration>,

    /// Make the key expire at this time, e.g. `2030-01-31T00:00:00Z`.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Args, Debug)]
struct GetArgs {
    /// Id of the key (`key_...`).
    key_id: String,
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only keys of this project (default: every project the admin key reaches).
    #[arg(long)]
    project: Option<String>,

    /// Only keys in this state.
    #[arg(long, value_enum)]
    status: Option<StatusFilter>,

    /// Only keys with exactly this label.
    #[arg(long)]
    label: Option<String>,

    /// Keys per page, 1 to 500 (server default: 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=500))]
    page_size: Option<i32>,

    /// Start at this page: the token printed after the previous one.
    #[arg(long, value_name = "TOKEN")]
    page_token: Option<String>,

    /// Follow page tokens until every matching key is listed.
    #[arg(long)]
    all: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StatusFilter {
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

#[derive(Args, Debug)]
struct UpdateArgs {
    /// Id of the key to change.
    key_id: String,

    /// New label.
    #[arg(long)]
    label: Option<String>,

    /// Scope to grant; repeat for more. The scopes given replace all current ones.
    #[arg(long = "scope", value_name = "SCOPE", conflicts_with = "clear_scopes")]
    scopes: Vec<String>,

    /// Remove every scope.
    #[arg(long)]
    clear_scopes: bool,

    #[command(flatten)]
    expiry: ExpiryArgs,

    /// Make the key never expire.
    #[arg(long, conflicts_with_all = ["expires_in", "expires_at"])]
    no_expiry: bool,

    /// Metadata pair, e.g. `owner=ana`; repeat for more. The pairs given
    /// replace all current metadata.
    #[arg(
        long = "meta",
        value_name = "KEY=VALUE",
        value_parser = parse_pair,
        conflicts_with = "clear_metadata"
    )]
    metadata: Vec<(String, String)>,

    /// Remove all metadata.
    #[arg(long)]
    clear_metadata: bool,

    #[command(flatten)]
    limits: LimitArgs,

    #[command(flatten)]
    clear_limits: ClearLimitArgs,
}

#[derive(Args, Debug)]
struct RevokeArgs {
    /// Id of the key to revoke.
    key_id: String,

    /// Why, for the audit trail (shown as the key's revoke_reason).
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
}

#[derive(Args, Debug)]
struct RotateArgs {
    /// Id of the key to replace.
    key_id: String,

    /// How long the old key keeps working, e.g. `1h`; `0s` ends it at once
    /// (default: the server's, 24 hours).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Scope the call needs; repeat for more. Without any, every valid key
    /// is allowed.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,

    /// IP address of the caller, for keys limited to some sources.
    #[arg(long, value_name = "IP")]
    client_ip: Option<IpAddr>,

    /// Read the key from the first line of this file (`-` for stdin) instead
    /// of KEYWARD_KEY.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

pub async fn run(args: KeysArgs) -> Result<ExitCode> {
    let KeysArgs {
        connect,
        json,
        admin_key_file,
        command,
    } = args;
    if let KeysCommand::Verify(verify) = command {
        return run_verify(&connect, json, verify).await;
    }
    // Both are checked before connecting, so that a usage mistake is reported
    // as such even when the server is down.
    let admin = AdminKey::load(admin_key_file.as_deref())?;
    let command = Prepared::new(command, Utc::now())?;
    let mut client = client::connect(&connect).await?;
    let text = command.call(&mut client, &admin, json).await?;
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

async fn run_verify(connect: &ConnectArgs, json: bool, args: VerifyArgs) -> Result<ExitCode> {
    let key = match &args.key_file {
        Some(path) => client::read_secret(path).context("cannot read the key to verify")?,
        None => client::env_secret(KEY_ENV).ok_or_else(|| {
            anyhow!("no key to verify: set {KEY_ENV} or pass --key-file PATH (`-` for stdin)")
        })?,
    };
    let request = pb::VerifyRequest {
        key,
        required_scopes: args.scopes,
        client_ip: args.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    };
    let mut client = client::connect(connect).await?;
    let response = client.verify(request).await.into_message()?;
    output::print(&if json {
        json_text(&output::verify_json(&response))
    } else {
        output::verify_details(&response)
    })?;
    Ok(if response.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An admin command with its request built and checked.
enum Prepared {
    Issue(pb::IssueRequest),
    Get(pb::GetKeyRequest),
    List {
        request: pb::ListKeysRequest,
        all: bool,
    },
    Update(pb::UpdateKeyRequest),
    Revoke(pb::RevokeRequest),
    Rotate(pb::RotateRequest),
    Usage {
        request: pb::GetUsageRequest,
        all_buckets: bool,
    },
}

impl Prepared {
    fn new(command: KeysCommand, now: DateTime<Utc>) -> Result<Self> {
        Ok(match command {
            KeysCommand::Issue(args) => Self::Issue(issue_request(args, now)?),
            KeysCommand::Get(args) => Self::Get(pb::GetKeyRequest {
                key_id: args.key_id,
            }),
            KeysCommand::List(args) => Self::List {
                all: args.all,
                request: list_request(args),
            },
            KeysCommand::Update(args) => Self::Update(update_request(args, now)?),
            KeysCommand::Revoke(args) => Self::Revoke(pb::RevokeRequest {
                key_id: args.key_id,
                reason: args.reason,
            }),
            KeysCommand::Rotate(args) => Self::Rotate(rotate_request(args)?),
            KeysCommand::Usage(args) => Self::Usage {
                request: args.request(now)?,
                all_buckets: args.all_buckets(),
            },
            KeysCommand::Verify(_) => unreachable!("verify needs no admin key and runs apart"),
        })
    }

    /// Makes the call and returns what to print on stdout.
    async fn call(self, client: &mut KeyClient, admin: &AdminKey, json: bool) -> Result<String> {
        Ok(match self {
            Self::Issue(request) => {
                let response = client.issue(admin.request(request)).await.into_message()?;
                let info = info(response.info)?;
                if json {
                    json_text(&json!({ "key": response.key, "info": output::key_json(&info) }))
                } else {
                    shown_once();
                    format!("{}\n\n{}", response.key, output::key_details(&info))
                }
            }
            Self::Get(request) => {
                let response = client
                    .get_key(admin.request(request))
                    .await
                    .into_message()?;
                one_key(info(response.info)?, json)
            }
            Self::List { request, all } => list(client, admin, request, all, json).await?,
            Self::Update(request) => {
                let response = client
                    .update_key(admin.request(request))
                    .await
                    .into_message()?;
                one_key(info(response.info)?, json)
            }
            Self::Revoke(request) => {
                let response = client.revoke(admin.request(request)).await.into_message()?;
                one_key(info(response.info)?, json)
            }
            Self::Rotate(request) => {
                let response = client.rotate(admin.request(request)).await.into_message()?;
                let new = info(response.info)?;
                let previous = info(response.previous)?;
                if json {
                    json_text(&json!({
                        "key": response.key,
                        "info": output::key_json(&new),
                        "previous": output::key_json(&previous),
                    }))
                } else {
                    shown_once();
                    format!(
                        "{}\n\nnew key:\n{}\nprevious key:\n{}",
                        response.key,
                        output::key_details(&new),
                        output::key_details(&previous)
                    )
                }
            }
            Self::Usage {
                request,
                all_buckets,
            } => {
                let response = client
                    .get_usage(admin.request(request))
                    .await
                    .into_message()?;
                if json {
                    json_text(&usage::json_value(&response))
                } else {
                    usage::text(&response, all_buckets)
                }
            }
        })
    }
}

// On stderr, so that `keyward keys issue ... > key.txt` captures only the
// secret's line and the details.
fn shown_once() {
    eprintln!("The secret key below is shown only once: store it now.");
}

fn info(info: Option<pb::KeyInfo>) -> Result<pb::KeyInfo> {
    info.ok_or_else(|| anyhow!("the server's response has no key information"))
}

fn one_key(info: pb::KeyInfo, json: bool) -> String {
    if json {
        json_text(&json!({ "info": output::key_json(&info) }))
    } else {
        output::key_details(&info)
    }
}

async fn list(
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
        let keys: Vec<_> = keys.iter().map(output::key_json).collect();
        return Ok(json_text(
            &json!({ "keys": keys, "next_page_token": next_page_token }),
        ));
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

fn issue_request(args: IssueArgs, now: DateTime<Utc>) -> Result<pb::IssueRequest> {
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

fn list_request(args: ListArgs) -> pb::ListKeysRequest {
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

/// The mask names exactly the fields whose flags were given, since the
/// server sets every masked field, absent values included.
fn update_request(args: UpdateArgs, now: DateTime<Utc>) -> Result<pb::UpdateKeyRequest> {
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
        update_mask: Some(prost_types::FieldMask {
            paths: paths.into_iter().map(str::to_owned).collect(),
        }),
    })
}

fn rotate_request(args: RotateArgs) -> Result<pb::RotateRequest> {
    let grace_period = args
        .grace
        .map(prost_types::Duration::try_from)
        .transpose()
        .map_err(|_| anyhow!("--grace is too long"))?;
    Ok(pb::RotateRequest {
        key_id: args.key_id,
        grace_period,
    })
}

impl ExpiryArgs {
    fn resolve(&self, now: DateTime<Utc>) -> Result<Option<prost_types::Timestamp>> {
        let at = match (self.expires_in, self.expires_at) {
            (Some(after), _) => chrono::Duration::from_std(after)
                .ok()
                .and_then(|after| now.checked_add_signed(after))
                .ok_or_else(|| anyhow!("--expires-in is too long"))?,
            (None, Some(at)) => at,
            (None, None) => return Ok(None),
        };
        Ok(Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }))
    }
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some(("", _)) => Err("the key before `=` is empty".to_owned()),
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => Err("expected KEY=VALUE".to_owned()),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2030-01-31T00:00:00Z"))
}

// A map would silently keep only the last of two values for one key.
fn metadata(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        if map.contains_key(&key) {
            bail!("metadata key {key:?} is given twice");
        }
        map.insert(key, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        keys: KeysArgs,
    }

    fn parse(args: &[&str]) -> Result<KeysArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("keys").chain(args.iter().copied())).map(|c| c.keys)
    }

    fn command(args: &[&str]) -> KeysCommand {
        parse(args).unwrap().command
    }

    fn now() -> DateTime<Utc> {
        parse_time("2025-01-01T00:00:00Z").unwrap()
    }

    fn update(args: &[&str]) -> Result<pb::UpdateKeyRequest> {
        let mut argv = vec!["update", "key_01"];
        argv.extend_from_slice(args);
        match command(&argv) {
            KeysCommand::Update(args) => update_request(args, now()),
            other => panic!("{other:?}"),
        }
    }

    fn mask(request: &pb::UpdateKeyRequest) -> Vec<&str> {
        let mask = request.update_mask.as_ref().unwrap();
        mask.paths.iter().map(String::as_str).collect()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(parse_pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_pair("a="), Ok(("a".into(), String::new())));
        assert!(parse_pair("=b").is_err());
        assert!(parse_pair("ab").is_err());
    }

    #[test]
    fn repeated_metadata_keys_are_refused() {
        let pairs = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        assert!(metadata(pairs).is_err());
    }

    #[test]
    fn issue_builds_the_request() {
        let argv = [
            "issue",
            "--project",
            "acme",
            "--label",
            "ci",
            "--scope",
            "a:read",
            "--scope",
            "b:*",
            "--expires-in",
            "30d",
            "--meta",
            "owner=ana",
        ];
        let KeysCommand::Issue(args) = command(&argv) else {
            panic!()
        };
        let request = issue_request(args, now()).unwrap();
        assert_eq!(request.project, "acme");
        assert_eq!(request.scopes, ["a:read", "b:*"]);
        let expected = parse_time("2025-01-31T00:00:00Z").unwrap().timestamp();
        assert_eq!(request.expires_at.unwrap().seconds, expected);
        assert_eq!(request.metadata["owner"], "ana");
    }

    #[test]
    fn expiry_flags_exclude_each_other() {
        let base = ["issue", "--project", "p", "--label", "l"];
        let both = [
            &base[..],
            &["--expires-in", "1d", "--expires-at", "2030-01-01T00:00:00Z"],
        ];
        assert!(parse(&both.concat()).is_err());
        assert!(parse(&[&base[..], &["--expires-at", "tomorrow"]].concat()).is_err());
        assert!(parse(&["update", "key_01", "--no-expiry", "--expires-in", "1d"]).is_err());
        assert!(parse(&["update", "key_01", "--scope", "a", "--clear-scopes"]).is_err());
        assert!(parse(&["update", "key_01", "--meta", "a=b", "--clear-metadata"]).is_err());
    }

    #[test]
    fn update_mask_names_only_the_given_flags() {
        let request = update(&["--label", "new"]).unwrap();
        assert_eq!(mask(&request), ["label"]);
        assert_eq!(request.label, "new");

        let request = update(&["--clear-scopes", "--no-expiry", "--clear-metadata"]).unwrap();
        assert_eq!(mask(&request), ["scopes", "expires_at", "metadata"]);
        assert!(request.scopes.is_empty() && request.expires_at.is_none());

        let at = "2030-01-01T00:00:00+02:00";
        let request = update(&["--scope", "x", "--expires-at", at, "--meta", "k=v"]).unwrap();
        assert_eq!(mask(&request), ["scopes", "expires_at", "metadata"]);
        let expected = parse_time("2029-12-31T22:00:00Z").unwrap().timestamp();
        assert_eq!(request.expires_at.unwrap().seconds, expected);
    }

    #[test]
    fn update_without_changes_is_an_error() {
        let error = update(&[]).unwrap_err().to_string();
        assert!(error.starts_with("nothing to update"), "{error}");
    }

    #[test]
    fn list_maps_filters() {
        let argv = ["list", "--status", "rotating", "--page-size", "10", "--all"];
        let KeysCommand::List(args) = command(&argv) else {
            panic!()
        };
        assert!(args.all);
        let request = list_request(args);
        assert_eq!(request.status, pb::KeyStatus::Rotating as i32);
        assert_eq!(request.page_size, 10);
        assert!(request.project.is_empty() && request.page_token.is_empty());
        assert!(parse(&["list", "--page-size", "501"]).is_err());
        assert!(parse(&["list", "--status", "bogus"]).is_err());
    }

    #[test]
    fn rotate_sends_a_grace_period_only_when_given() {
        let rotate = |argv: &[&str]| match command(argv) {
            KeysCommand::Rotate(args) => rotate_request(args).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(rotate(&["rotate", "key_01"]).grace_period, None);
        let zero = rotate(&["rotate", "key_01", "--grace", "0s"]).grace_period;
        assert_eq!(zero, Some(prost_types::Duration::default()));
        let hour = rotate(&["rotate", "key_01", "--grace", "1h"]).grace_period;
        assert_eq!(hour.unwrap().seconds, 3600);
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let args = parse(&["get", "key_01", "--json", "--server", "http://h:1"]).unwrap();
        assert!(args.json);
        assert_eq!(args.connect.server, "http://h:1");
    }

    #[test]
    fn secrets_have_no_command_line_flag() {
        assert!(parse(&["--admin-key", "x", "get", "key_01"]).is_err());
        assert!(parse(&["verify", "--key", "x"]).is_err());
        assert!(parse(&["verify", "--key-file", "-", "--client-ip", "10.0.0.1"]).is_ok());
        assert!(parse(&["verify", "--client-ip", "not-an-ip"]).is_err());
    }
}
