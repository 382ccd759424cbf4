//! `keyward scan`: finds keyward keys in files, for pre-commit hooks and CI.

use std::{path::PathBuf, process::ExitCode};

use crate::scan::{self, WalkOptions};

/// Exit status when keys were found.
const FOUND: u8 = 1;
/// Exit status when a path could not be read (wins over FOUND: the scan was
/// incomplete).
const FAILED: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads stdin (default: `.`).
    pub paths: Vec<PathBuf>,

    /// Also scan paths that .gitignore, .git/info/exclude or .ignore skip.
    #[arg(long, env = "KEYWARD_SCAN_NO_IGNORE")]
    pub no_ignore: bool,
}

/// Prints `path:line: hint` per key on stdout (never the key); exits 0 when
/// none, 1 when some, 2 when a path could not be read.
pub fn run(args: ScanArgs) -> ExitCode {
    let mut found = 0usize;
    let mut failed = 0usize;
    let mut report = |location: &scan::Location, finding: &scan::Finding| {
        found += 1;
        println!("{location}:{}: {}", finding.line, finding.hint);
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let (stdin, files): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.into_iter().partition(|path| path.as_os_str() == "-");
    if !stdin.is_empty()
        && let Err(error) = scan::scan_reader(std::io::stdin().lock(), &mut report)
    {
        failed += 1;
        eprintln!("error: {error}");
    }
    let options = WalkOptions {
        no_ignore: args.no_ignore,
    };
    scan::scan_paths(&files, options, &mut report, |error| {
        failed += 1;
        eprintln!("error: {error}");
    });
    if found > 0 {
        eprintln!(
            "keyward scan: {found} keyward key(s) found; revoke them (`keyward keys revoke`)"
        );
    }
    if failed > 0 {
        ExitCode::from(FAILED)
    } else if found > 0 {
        ExitCode::from(FOUND)
    } else {
        ExitCode::SUCCESS
    }
}
