//! Which files a scan reads: paths given, directories walked with git's
//! ignore rules (unless told otherwise), hidden files included because
//! `.env` is where keys leak most.

use std::{
    fmt,
    io::Read,
    path::{Path, PathBuf},
};

use super::finder::{Finding, find_keys};

#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// Read git-ignored and `.ignore`d paths too.
    pub no_ignore: bool,
}

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Stdin,
    File(PathBuf),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdin => f.write_str("-"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A path that could not be read. Names the path and the cause, never any
/// content.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ScanError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// Scans every file under `paths`, calling `found` for each key and
/// `failed` for each path it cannot read; it carries on after both.
pub fn scan_paths(
    paths: &[PathBuf],
    options: WalkOptions,
    mut found: impl FnMut(&Location, &Finding),
    mut failed: impl FnMut(ScanError),
) {
    let Some((first, rest)) = paths.split_first() else {
        return;
    };
    let mut builder = ignore::WalkBuilder::new(first);
    for path in rest {
        builder.add(path);
    }
    builder
        .hidden(false)
        .git_ignore(!options.no_ignore)
        .git_global(!options.no_ignore)
        .git_exclude(!options.no_ignore)
        .ignore(!options.no_ignore)
        .parents(!options.no_ignore)
        .filter_entry(|entry| entry.file_name() != ".git");
    for entry in builder.build() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                failed(walk_error(error));
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        match std::fs::read(path) {
            Ok(text) => {
                let location = Location::File(path.to_path_buf());
                for finding in find_keys(&text) {
                    found(&location, &finding);
                }
            }
            Err(source) => failed(ScanError {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// Scans all of `reader` (stdin, for `-`).
pub fn scan_reader(
    mut reader: impl Read,
    mut found: impl FnMut(&Location, &Finding),
) -> Result<(), ScanError> {
    let mut text = Vec::new();
    reader.read_to_end(&mut text).map_err(|source| ScanError {
        path: Location::Stdin.to_string(),
        source,
    })?;
    for finding in find_keys(&text) {
        found(&Location::Stdin, &finding);
    }
    Ok(())
}

fn walk_error(error: ignore::Error) -> ScanError {
    let path = error_path(&error).map_or_else(|| "?".to_owned(), |p| p.display().to_string());
    let source = error
        .io_error()
        .map(|io| std::io::Error::new(io.kind(), io.to_string()))
        .unwrap_or_else(|| std::io::Error::other(error.to_string()));
    ScanError { path, source }
}

fn error_path(error: &ignore::Error) -> Option<&Path> {
    match error {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithLineNumber { err, .. } | ignore::Error::WithDepth { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::format::generate;

    fn scan(dir: &Path, options: WalkOptions) -> (Vec<String>, usize) {
        let mut found = Vec::new();
        let mut errors = 0;
        scan_paths(
            &[dir.to_path_buf()],
            options,
            |location, finding| found.push(format!("{location}:{}", finding.line)),
            |_| errors += 1,
        );
        found.sort();
        (found, errors)
    }

    #[test]
    fn walks_hidden_files_and_honours_gitignore_unless_told() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate("acme").into_exposed();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".gitignore"), "ignored.txt\n").unwrap();
        std::fs::write(dir.path().join(".env"), format!("\nKEY={key}\n")).unwrap();
        std::fs::write(dir.path().join("ignored.txt"), &key).unwrap();
        std::fs::write(dir.path().join(".git").join("config"), &key).unwrap();
        let env = format!("{}:2", dir.path().join(".env").display());
        let ignored = format!("{}:1", dir.path().join("ignored.txt").display());

        assert_eq!(
            scan(dir.path(), WalkOptions::default()),
            (vec![env.clone()], 0)
        );
        let everything = scan(dir.path(), WalkOptions { no_ignore: true });
        assert_eq!(everything, (vec![env, ignored], 0));
    }

    #[test]
    fn a_missing_path_is_an_error_and_the_rest_is_scanned() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), generate("a").expose()).unwrap();
        let mut found = 0;
        let mut errors = Vec::new();
        scan_paths(
            &[dir.path().join("missing"), dir.path().to_path_buf()],
            WalkOptions::default(),
            |_, _| found += 1,
            |error| errors.push(error.path),
        );
        assert_eq!(found, 1);
        assert_eq!(errors.len(), 1);
    }
}
