//! `keyward scan`: finds keyward keys in files, for pre-commit hooks and CI;
//! with a server, says whose they are and revokes the live ones.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;

use super::client::{self, AdminKey, ConnectArgs, ResponseExt};
use crate::{
    proto::v1 as pb,
    scan::{self, Finding, Location, WalkOptions},
};

/// Exit status when keys were found.
const FOUND: u8 = 1;
/// Exit status when a path could not be read (wins over FOUND: the scan was
/// incomplete).
const FAILED: u8 = 2;
/// RevokeRequest.reason's limit.
const MAX_REASON: usize = 512;

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads stdin (default: `.`).
    pub paths: Vec<PathBuf>,

    /// Also scan paths that .gitignore, .git/info/exclude or .ignore skip.
    #[arg(long, env = "KEYWARD_SCAN_NO_IGNORE")]
    pub no_ignore: bool,

    /// Ask the server (--server) which key id each key is and whether it is
    /// live. Uses Verify, so each check counts as a use of the key.
    #[arg(long)]
    pub check: bool,

    /// Revoke the live keys found, with their location as the reason (needs
    /// an admin key; implies --check).
    #[arg(long)]
    pub revoke: bool,

    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Read the admin key for --revoke from the first line of this file
    /// instead of KEYWARD_ADMIN_KEY.
    #[arg(long, value_name = "PATH")]
    pub admin_key_file: Option<PathBuf>,
}

/// Prints `path:line: hint` per key on stdout (never the key), with
/// `key_id status` after it under --check; exits 0 when none, 1 when some,
/// 2 when a path could not be read or a check failed.
pub async fn run(args: ScanArgs) -> Result<ExitCode> {
    // Checked before scanning, so a usage mistake is not reported late. It
    // exits FAILED, not the error's 1, which a pre-commit hook or CI would
    // read as "keys found".
    let admin = match args
        .revoke
        .then(|| AdminKey::load(args.admin_key_file.as_deref()))
        .transpose()
    {
        Ok(admin) => admin,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(ExitCode::from(FAILED));
        }
    };
    let (findings, mut failed) = collect(&args);
    if args.check || args.revoke {
        if !findings.is_empty() {
            failed |= !check(&args.connect, admin.as_ref(), &findings).await;
        }
    } else {
        print_plain(&findings);
    }
    if !findings.is_empty() {
        eprintln!(
            "keyward scan: {} keyward key(s) found; revoke them (`keyward keys revoke`)",
            findings.len()
        );
    }
    Ok(if failed {
        ExitCode::from(FAILED)
    } else if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FOUND)
    })
}

fn collect(args: &ScanArgs) -> (Vec<(Location, Finding)>, bool) {
    let mut findings = Vec::new();
    let mut failed = false;
    let mut report =
        |location: &Location, finding: &Finding| findings.push((location.clone(), finding.clone()));
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let (stdin, files): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.into_iter().partition(|path| path.as_os_str() == "-");
    if !stdin.is_empty()
        && let Err(error) = scan::scan_reader(std::io::stdin().lock(), &mut report)
    {
        failed = true;
        eprintln!("error: {error}");
    }
    let options = WalkOptions {
        no_ignore: args.no_ignore,
    };
    scan::scan_paths(&files, options, &mut report, |error| {
        failed = true;
        eprintln!("error: {error}");
    });
    (findings, failed)
}

fn print_plain(findings: &[(Location, Finding)]) {
    for (location, finding) in findings {
        println!("{location}:{}: {}", finding.line, finding.hint);
    }
}

/// Prints each finding with its key id and status, revoking live ones when
/// `admin` is given. False when some call failed; when the server cannot be
/// reached at all, the findings are still printed, without ids.
async fn check(
    connect: &ConnectArgs,
    admin: Option<&AdminKey>,
    findings: &[(Location, Finding)],
) -> bool {
    let mut client = match client::connect(connect).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error:#}");
            print_plain(findings);
            return false;
        }
    };
    let mut all_ok = true;
    for (location, finding) in findings {
        let at = format!("{location}:{}", finding.line);
        let request = pb::VerifyRequest {
            key: finding.key.expose().to_owned(),
            ..Default::default()
        };
        let verdict = match client.verify(request).await.into_message() {
            Ok(verdict) => verdict,
            Err(error) => {
                all_ok = false;
                eprintln!("error: {at}: {error:#}");
                continue;
            }
        };
        let status = status(verdict.reason());
        let id = if verdict.key_id.is_empty() {
            "-"
        } else {
            &verdict.key_id
        };
        let mut note = String::new();
        if let Some(admin) = admin
            && status == "live"
        {
            let request = pb::RevokeRequest {
                key_id: verdict.key_id.clone(),
                reason: reason(&at),
            };
            match client.revoke(admin.request(request)).await.into_message() {
                Ok(_) => note.push_str(" revoked"),
                Err(error) => {
                    all_ok = false;
                    eprintln!("error: {at}: revoke {id}: {error:#}");
                }
            }
        }
        println!("{at}: {} {id} {status}{note}", finding.hint);
    }
    all_ok
}

/// Live means the key would pass a call that needs no scope, or only a
/// limit stops it now.
fn status(reason: pb::Reason) -> &'static str {
    use pb::Reason as R;
    match reason {
        R::Ok | R::RateLimited | R::QuotaExceeded | R::SourceNotAllowed => "live",
        R::Revoked => "revoked",
        R::Expired => "expired",
        R::Unknown => "unknown",
        _ => "unchecked",
    }
}

/// `leaked: <location>`, cut to the server's limit on a char boundary.
fn reason(at: &str) -> String {
    let mut reason = format!("leaked: found at {at}");
    if reason.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_the_servers_limit() {
        assert_eq!(reason("a.env:3"), "leaked: found at a.env:3");
        let long = reason(&"é".repeat(600));
        assert!(long.len() <= MAX_REASON && long.starts_with("leaked: "));
    }
}
