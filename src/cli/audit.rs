//! `keyward audit`: the audit trail of admin actions, from a running server.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;

use super::{
    client::{self, AdminKey, CLIENT_OPTIONS, ConnectArgs, ResponseExt},
    output::{self, Table, clean, time_text},
};
use crate::{
    grpc::convert,
    proto::{timestamp::Timestamp, v1 as pb},
};

#[derive(Args, Debug)]
#[command(after_help = "\
Needs an admin key: the first line of --admin-key-file, else the \
KEYWARD_ADMIN_KEY environment variable. A project admin sees its own \
project's events only.")]
pub struct AuditArgs {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Print the events as JSON instead of a table.
    #[arg(long, help_heading = CLIENT_OPTIONS)]
    json: bool,

    /// Read the admin key from the first line of this file (`-` for stdin)
    /// instead of KEYWARD_ADMIN_KEY.
    #[arg(long, value_name = "PATH", help_heading = CLIENT_OPTIONS)]
    admin_key_file: Option<PathBuf>,

    /// Only events about this key id.
    #[arg(long, value_name = "KEY_ID")]
    key_id: Option<String>,

    /// Only events of this project.
    #[arg(long)]
    project: Option<String>,

    /// Only this action: bootstrap, issue, revoke, rotate, update or
    /// revoke_leaked (a revoke on a leak report).
    #[arg(long)]
    action: Option<String>,

    /// Only events at or after this time: RFC 3339 (`2030-01-31T00:00:00Z`)
    /// or a duration ago (`24h`, `7d`).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    since: Option<When>,

    /// Only events before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    until: Option<When>,

    /// Events per page, 1 to 500 (default 50).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=500))]
    page_size: Option<i32>,

    /// Continue from this token (printed after a page that has more).
    #[arg(long)]
    page_token: Option<String>,

    /// Fetch every page.
    #[arg(long)]
    all: bool,
}

/// A time given as an instant or as a duration before now.
#[derive(Debug, Clone)]
pub(super) enum When {
    At(DateTime<Utc>),
    Ago(Duration),
}

impl When {
    pub(super) fn resolve(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        match self {
            When::At(at) => Ok(*at),
            When::Ago(ago) => Ok(now - chrono::Duration::from_std(*ago)?),
        }
    }
}

pub(super) fn parse_when(text: &str) -> Result<When, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(When::At(at.with_timezone(&Utc)));
    }
    humantime::parse_duration(text)
        .map(When::Ago)
        .map_err(|_| "an RFC 3339 time (2030-01-31T00:00:00Z) or a duration ago (24h)".to_owned())
}

fn request(args: &AuditArgs, now: DateTime<Utc>) -> Result<pb::ListAuditEventsRequest> {
    let time = |w: &Option<When>| -> Result<Option<Timestamp>> {
        w.as_ref()
            .map(|w| w.resolve(now).map(convert::timestamp))
            .transpose()
    };
    Ok(pb::ListAuditEventsRequest {
        key_id: args.key_id.clone().unwrap_or_default(),
        project: args.project.clone().unwrap_or_default(),
        action: args.action.clone().unwrap_or_default(),
        since: time(&args.since)?,
        until: time(&args.until)?,
        page_size: args.page_size.unwrap_or(0),
        page_token: args.page_token.clone().unwrap_or_default(),
    })
}

pub async fn run(args: AuditArgs) -> Result<ExitCode> {
    let admin = AdminKey::load(args.admin_key_file.as_deref())?;
    let mut request = request(&args, Utc::now())?;
    let mut client = client::connect(&args.connect).await?;
    let mut events = Vec::new();
    let next = loop {
        let response = client
            .list_audit_events(admin.request(request.clone()))
            .await
            .into_message()?;
        events.extend(response.events);
        let token = response.next_page_token;
        if !args.all || token.is_empty() {
            break token;
        }
        if token == request.page_token {
            bail!("the server returned the same page token twice");
        }
        request.page_token = token;
    };
    if args.json {
        output::print(&output::message_json(&pb::ListAuditEventsResponse {
            events,
            next_page_token: next,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if !next.is_empty() {
        eprintln!("more events follow: add --page-token {next} (or use --all)");
    }
    if events.is_empty() {
        eprintln!("no audit events found");
        return Ok(ExitCode::SUCCESS);
    }
    output::print(&event_table(&events))?;
    Ok(ExitCode::SUCCESS)
}

fn event_table(events: &[pb::AuditEvent]) -> String {
    let mut table = Table::with_header(&[
        "TIME", "ACTION", "PROJECT", "KEY", "ACTOR", "SOURCE", "DETAILS",
    ]);
    for e in events {
        table.row(vec![
            time_text(e.at.as_ref(), "-"),
            clean(&e.action),
            clean(&e.project),
            clean(&e.key_id),
            if e.actor_key_id.is_empty() {
                "-".to_owned()
            } else {
                clean(&e.actor_key_id)
            },
            clean(&e.source),
            clean(&e.details_json),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        audit: AuditArgs,
    }

    fn parse(args: &[&str]) -> AuditArgs {
        Wrapper::try_parse_from(std::iter::once("audit").chain(args.iter().copied()))
            .unwrap()
            .audit
    }

    #[test]
    fn filters_become_the_request() {
        let now = Utc::now();
        let args = parse(&[
            "--key-id",
            "key_x",
            "--action",
            "revoke",
            "--since",
            "24h",
            "--until",
            "2030-01-31T00:00:00Z",
        ]);
        let request = request(&args, now).unwrap();
        assert_eq!(request.key_id, "key_x");
        assert_eq!(request.action, "revoke");
        assert_eq!(
            request.since.unwrap().seconds,
            (now - chrono::Duration::hours(24)).timestamp()
        );
        assert_eq!(request.until.unwrap().seconds, 1_896_048_000);
    }

    #[test]
    fn bad_times_and_page_sizes_are_refused() {
        assert!(Wrapper::try_parse_from(["audit", "--since", "yesterday"]).is_err());
        assert!(Wrapper::try_parse_from(["audit", "--page-size", "0"]).is_err());
    }

    #[test]
    fn tables_escape_control_characters() {
        let event = pb::AuditEvent {
            action: "revoke".into(),
            details_json: "{\"reason\":\"a\nb\"}".into(),
            ..Default::default()
        };
        let table = event_table(&[event]);
        assert!(table.contains("revoke"));
        assert_eq!(table.lines().count(), 2);
    }
}
