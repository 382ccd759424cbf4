//! `keyward keys`: a command-line client for a running keyward server.
//!
//! Secrets never come from argv, which any local user can read with `ps`:
//! the admin key comes from `--admin-key-file` or `KEYWARD_ADMIN_KEY`, and the
//! key to verify from `--key-file` or `KEYWARD_KEY`.

mod fields;
mod issue;
mod list;
mod update;
mod verify;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use self::{
    issue::{IssueArgs, RotateArgs, issue_request, rotate_request, shown_once},
    list::{GetArgs, ListArgs, list, list_request},
    update::{RevokeArgs, UpdateArgs, update_request},
    verify::{VerifyArgs, run_verify},
};
use super::{
    client::{self, AdminKey, CLIENT_OPTIONS, ConnectArgs, KeyClient, ResponseExt},
    output,
    usage::{self, UsageArgs},
};
use crate::proto::v1 as pb;

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
                let info = info(response.info.clone())?;
                if json {
                    output::message_json(&response)
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
                one_key(&response, response.info.clone(), json)?
            }
            Self::List { request, all } => list(client, admin, request, all, json).await?,
            Self::Update(request) => {
                let response = client
                    .update_key(admin.request(request))
                    .await
                    .into_message()?;
                one_key(&response, response.info.clone(), json)?
            }
            Self::Revoke(request) => {
                let response = client.revoke(admin.request(request)).await.into_message()?;
                one_key(&response, response.info.clone(), json)?
            }
            Self::Rotate(request) => {
                let response = client.rotate(admin.request(request)).await.into_message()?;
                let new = info(response.info.clone())?;
                let previous = info(response.previous.clone())?;
                if json {
                    output::message_json(&response)
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
                    output::message_json(&response)
                } else {
                    usage::text(&response, all_buckets)
                }
            }
        })
    }
}

fn info(info: Option<pb::KeyInfo>) -> Result<pb::KeyInfo> {
    info.ok_or_else(|| anyhow!("the server's response has no key information"))
}

/// A response holding one key: the whole message as JSON, or the key's
/// fields for people.
fn one_key(
    response: &impl serde::Serialize,
    key: Option<pb::KeyInfo>,
    json: bool,
) -> Result<String> {
    let key = info(key)?;
    Ok(if json {
        output::message_json(response)
    } else {
        output::key_details(&key)
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{
        fields::{metadata, parse_pair, parse_time},
        *,
    };

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
        assert_eq!(zero, Some(pbjson_types::Duration::default()));
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
