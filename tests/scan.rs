//! `keyward scan` and the shipped scanner rules against a corpus of fresh
//! keys in the shapes they leak in, and against trees that hold none.

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use common::{TestApp, TestDb};
use keyward::{
    key::format::{self, PATTERN, generate, prefix_for_project},
    proto::v1 as pb,
};

const BIN: &str = env!("CARGO_BIN_EXE_keyward");
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/scanners");

/// One planted key: where it is and what the scanner should print for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Planted {
    file: PathBuf,
    line: usize,
    hint: String,
    key: String,
}

struct Corpus {
    dir: tempfile::TempDir,
    keys: Vec<Planted>,
}

/// Fresh keys, a different one in every spot (detect-secrets reports a
/// secret once per file), under several project prefixes.
fn corpus() -> Corpus {
    let projects = ["acme", "Acme Live", "orders-svc 2", "!!!", &"z".repeat(30)];
    let mut next = 0;
    let mut fresh = move || {
        next += 1;
        generate(&prefix_for_project(projects[next % projects.len()]))
    };
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    // Each template line holds at most one `{}`; the key replaces it.
    let files: [(&str, &[&str]); 9] = [
        ("alone.txt", &["", "{}", ""]),
        (
            "config.json",
            &["{", "  \"api_key\": \"{}\",", "  \"n\": 1", "}"],
        ),
        ("values.yaml", &["service:", "  key: {}", "  other: '{}'"]),
        (".env", &["# keys", "ACME_KEY={}", "OTHER=\"{}\""]),
        (
            "curl.sh",
            &["curl 'https://api.example.test/v1/orders?api_key={}&limit=5'"],
        ),
        (
            "README.md",
            &[
                "| env | key |",
                "|---|---|",
                "| live | `{}` |",
                "| test | {} |",
            ],
        ),
        ("main.rs", &["fn main() {", "    let key = \"{}\";", "}"]),
        ("headers.txt", &["Authorization: Bearer {}", "x-api-key:{}"]),
        ("nested/dir/app.toml", &["[client]", "key = \"{}\""]),
    ];
    for (name, lines) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = String::new();
        for (index, line) in lines.iter().enumerate() {
            if line.contains("{}") {
                let key = fresh();
                keys.push(Planted {
                    file: path.clone(),
                    line: index + 1,
                    hint: format::hint(&key),
                    key: key.expose().to_owned(),
                });
                text.push_str(&line.replace("{}", key.expose()));
            } else {
                text.push_str(line);
            }
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
    }
    // Whole files, for shapes a line template cannot write: CRLF, no final
    // newline, and keys glued to what precedes them (URL-encoded, a JSON
    // string's escape), which a leading `\b` once made RE2 and Python miss.
    let raw: [(&str, &str); 5] = [
        ("crlf.txt", "a\r\nkey: {}\r\nb\r\n"),
        ("no-newline.txt", "first\ntoken={}"),
        (
            "encoded-url.txt",
            "https://example.test/login?next=https%3A%2F%2Fapi.example.test%2F%3Fkey%3D{}\n",
        ),
        ("space.txt", "https://example.test/?q=Bearer%20{}\n"),
        ("log.json", "{\"msg\": \"started\\n{}\"}\n"),
    ];
    for (name, template) in raw {
        let path = dir.path().join(name);
        let key = fresh();
        let (before, _) = template.split_once("{}").unwrap();
        keys.push(Planted {
            file: path.clone(),
            line: before.matches('\n').count() + 1,
            hint: format::hint(&key),
            key: key.expose().to_owned(),
        });
        std::fs::write(&path, template.replace("{}", key.expose())).unwrap();
    }
    // Look-alikes: pattern-shaped, but no checksum holds.
    let mut typo = generate("acme").into_exposed();
    let last = if typo.ends_with('0') { "1" } else { "0" };
    typo.replace_range(typo.len() - 1.., last);
    let fake = format!("acme_kw1_{}", "A".repeat(49));
    std::fs::write(
        dir.path().join("lookalike.txt"),
        format!("{typo}\n{fake}\n"),
    )
    .unwrap();
    keys.sort();
    Corpus { dir, keys }
}

fn scan(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("scan")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or("").to_owned();
    let mut pipe = child.stdin.take().unwrap();
    std::thread::spawn(move || std::io::Write::write_all(&mut pipe, input.as_bytes()));
    child.wait_with_output().unwrap()
}

fn reported(output: &Output) -> BTreeSet<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn expected(keys: &[Planted]) -> BTreeSet<String> {
    keys.iter()
        .map(|k| format!("{}:{}: {}", k.file.display(), k.line, k.hint))
        .collect()
}

#[test]
fn scan_finds_every_key_and_prints_only_hints() {
    let corpus = corpus();
    let output = scan(&[corpus.dir.path().to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(reported(&output), expected(&corpus.keys));
    let everything = [output.stdout, output.stderr].concat();
    let everything = String::from_utf8(everything).unwrap();
    for planted in &corpus.keys {
        assert!(!everything.contains(&planted.key[planted.key.len() - 20..]));
    }
}

#[test]
fn scan_reads_stdin_and_exits_zero_on_clean_input() {
    let key = generate("acme");
    let output = scan(&["-"], Some(&format!("one\ntoken={}\n", key.expose())));
    assert_eq!(output.status.code(), Some(1));
    let line = format!("-:2: {}", format::hint(&key));
    assert_eq!(reported(&output), BTreeSet::from([line]));

    let clean = scan(&["-"], Some("nothing to see\n"));
    assert_eq!(clean.status.code(), Some(0));
    assert!(clean.stdout.is_empty());
}

#[test]
fn scan_fails_with_two_on_an_unreadable_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let output = scan(&[missing.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn scan_reports_nothing_on_the_projects_own_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for tree in ["src", "tests", "contrib", "README.md"] {
        let output = scan(&[root.join(tree).to_str().unwrap()], None);
        assert_eq!(output.status.code(), Some(0), "{tree}: {output:?}");
        assert!(output.stdout.is_empty(), "{tree}");
    }
}

/// The Rust toolchain's own sources (rust-src's library, else rust-docs'
/// rendered std sources): a large tree of code that holds no keyward key.
fn toolchain_sources() -> Option<PathBuf> {
    let home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".rustup")))?;
    let mut toolchains: Vec<PathBuf> = std::fs::read_dir(home.join("toolchains"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    toolchains.sort();
    toolchains.into_iter().find_map(|toolchain| {
        [
            "lib/rustlib/src/rust/library",
            "share/doc/rust/html/src/std",
        ]
        .into_iter()
        .map(|sub| toolchain.join(sub))
        .find(|path| path.is_dir())
    })
}

#[test]
fn scan_reports_nothing_on_the_rust_toolchain_sources() {
    let Some(tree) = toolchain_sources() else {
        common::skip(
            "no Rust toolchain sources under ~/.rustup",
            "rustup component add rust-src, or the rust-docs component",
        );
        return;
    };
    let output = scan(&["--no-ignore", tree.to_str().unwrap()], None);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}: {output:?}",
        tree.display()
    );
    assert!(output.stdout.is_empty());
}

/// The text between the single quotes of a `name: '...'` YAML line (YAML
/// escapes a quote inside as two).
fn yaml_single_quoted(text: &str, name: &str) -> String {
    let start = format!("{name}: '");
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("no `{name}:` in the TruffleHog rule"));
    let quoted = line[start.len()..].strip_suffix('\'').unwrap();
    quoted.replace("''", "'")
}

/// The text of the `PATTERN = r"..."` line of the detect-secrets plugin.
fn python_raw_string(text: &str, name: &str) -> String {
    let start = format!("{name} = r\"");
    let line = text
        .lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("no `{name} = r\"` in the detect-secrets plugin"));
    line[start.len()..].strip_suffix('"').unwrap().to_owned()
}

fn rule_regexes() -> [(&'static str, String); 3] {
    let gitleaks: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{RULES}/gitleaks.toml")).unwrap())
            .unwrap();
    let rule = &gitleaks["rules"].as_array().unwrap()[0];
    let gitleaks = rule["regex"].as_str().unwrap().to_owned();
    let trufflehog = std::fs::read_to_string(format!("{RULES}/trufflehog.yaml")).unwrap();
    let plugin = std::fs::read_to_string(format!("{RULES}/detect_secrets_keyward.py")).unwrap();
    [
        ("gitleaks", gitleaks),
        ("trufflehog", yaml_single_quoted(&trufflehog, "key")),
        ("detect-secrets", python_raw_string(&plugin, "PATTERN")),
    ]
}

/// Each rule's regex as its tool applies it: to the whole file (gitleaks and
/// TruffleHog match fragments, not lines), with RE2's semantics (Go's
/// `regexp`: leftmost-first, and `\b` an ASCII word boundary, which Rust's
/// `regex` gives with Unicode off). Neither tool checks the checksum, so a
/// match glued to what precedes the key may start early; it must end with
/// the key, and nothing else in the corpus may match.
#[test]
fn gitleaks_and_trufflehog_regexes_find_every_key() {
    let corpus = corpus();
    let files: BTreeSet<&PathBuf> = corpus.keys.iter().map(|k| &k.file).collect();
    for (tool, pattern) in rule_regexes() {
        assert_eq!(pattern, PATTERN, "{tool}'s rule drifted from the format");
        let re2 = regex::RegexBuilder::new(&pattern)
            .unicode(false)
            .build()
            .unwrap();
        let mut matches = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            matches.extend(re2.find_iter(&text).map(|m| m.as_str().to_owned()));
        }
        for planted in &corpus.keys {
            assert!(
                matches.iter().any(|m| m.ends_with(&planted.key)),
                "{tool}: {planted:?}"
            );
            assert!(planted.key.contains("_kw1_"), "the rules' keyword");
        }
        assert_eq!(matches.len(), corpus.keys.len(), "{tool}: {matches:?}");
    }
}

/// `detect-secrets scan` with only the keyward plugin's findings kept, as
/// (file, line) pairs. Runs in `dir` on paths relative to it: detect-secrets
/// drops files outside its working directory, and without `--all-files`
/// reads only files git tracks.
fn detect_secrets(dir: &Path, paths: &[&Path]) -> Option<BTreeSet<(PathBuf, usize)>> {
    let output = Command::new("detect-secrets")
        .current_dir(dir)
        .args(["scan", "--all-files"])
        .arg("--plugin")
        .arg(format!("{RULES}/detect_secrets_keyward.py"))
        .args(paths)
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        other => {
            common::skip(
                &format!("detect-secrets does not run: {other:?}"),
                "pip install detect-secrets, or run .ci/deps",
            );
            return None;
        }
    };
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut found = BTreeSet::new();
    for (file, results) in report["results"].as_object().unwrap() {
        for result in results.as_array().unwrap() {
            if result["type"] == "Keyward API Key" {
                let line = result["line_number"].as_u64().unwrap() as usize;
                found.insert((dir.join(file), line));
            }
        }
    }
    Some(found)
}

#[test]
fn the_detect_secrets_plugin_finds_every_key_and_checks_checksums() {
    let corpus = corpus();
    let root = corpus.dir.path();
    let mut files: Vec<&Path> = corpus
        .keys
        .iter()
        .map(|k| k.file.strip_prefix(root).unwrap())
        .collect();
    files.dedup();
    files.push(Path::new("lookalike.txt"));
    let Some(found) = detect_secrets(root, &files) else {
        return;
    };
    let planted: BTreeSet<(PathBuf, usize)> = corpus
        .keys
        .iter()
        .map(|k| (k.file.clone(), k.line))
        .collect();
    assert_eq!(found, planted, "look-alikes must not count either");
}

#[test]
fn the_detect_secrets_plugin_reports_nothing_on_the_projects_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let trees = [Path::new("src"), Path::new("tests"), Path::new("contrib")];
    if let Some(found) = detect_secrets(root, &trees) {
        assert_eq!(found, BTreeSet::new());
    }
}

async fn scan_against(app: &TestApp, admin: &str, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("scan")
        .args(args)
        .env("KEYWARD_SERVER", app.url())
        .env("KEYWARD_ADMIN_KEY", admin);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn check_names_each_key_and_revoke_revokes_only_the_live_ones() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut client = app.api().await;
    let admin = client.admin.clone();
    let (live, live_id) = client.issue_key("acme", "live", &[]).await;
    let (dead, dead_id) = client.issue_key("acme", "dead", &[]).await;
    client.revoke_id(&dead_id, "rotated out").await;
    let stranger = generate("acme").into_exposed();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env");
    std::fs::write(&file, format!("A={live}\nB={dead}\nC={stranger}\n")).unwrap();
    let path = file.to_str().unwrap();
    let hint = |key: &str| format!("acme_...{}", &key[key.len() - 4..]);

    let checked = scan_against(&app, &admin, &["--check", path]).await;
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    let expected = BTreeSet::from([
        format!("{path}:1: {} {live_id} live", hint(&live)),
        format!("{path}:2: {} {dead_id} revoked", hint(&dead)),
        format!("{path}:3: {} - unknown", hint(&stranger)),
    ]);
    assert_eq!(reported(&checked), expected);
    let still = client.verify(&live, &[]).await;
    assert!(still.allowed, "--check alone revokes nothing");

    let revoked = scan_against(&app, &admin, &["--revoke", path]).await;
    assert_eq!(revoked.status.code(), Some(1), "{revoked:?}");
    let line = format!("{path}:1: {} {live_id} live revoked", hint(&live));
    assert!(reported(&revoked).contains(&line), "{revoked:?}");
    for (id, why) in [
        (&live_id, format!("leaked: found at {path}:1")),
        (&dead_id, "rotated out".to_owned()),
    ] {
        let info = client.get_id(id).await;
        assert_eq!(info.status, pb::KeyStatus::Revoked as i32);
        assert_eq!(info.revoke_reason, why);
    }
    let output = [
        revoked.stdout,
        revoked.stderr,
        checked.stdout,
        checked.stderr,
    ]
    .concat();
    let output = String::from_utf8(output).unwrap();
    for key in [&live, &dead, &stranger] {
        assert!(
            !output.contains(&key[key.len() - 20..]),
            "a key was printed"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn revoke_without_an_admin_key_is_refused_before_scanning() {
    let output = tokio::task::spawn_blocking(|| {
        Command::new(BIN)
            .args(["scan", "--revoke", "-"])
            .env_remove("KEYWARD_ADMIN_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    // 2, not 1: a hook or CI must not read a usage mistake as "keys found".
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("KEYWARD_ADMIN_KEY"));
}

#[test]
fn check_without_a_server_exits_two_and_still_says_where_the_keys_are() {
    let key = generate("acme");
    let input = format!(
        "x
{}
",
        key.expose()
    );
    let output = scan(
        &["--check", "--server", "http://127.0.0.1:1", "-"],
        Some(&input),
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let line = format!("-:2: {}", format::hint(&key));
    assert_eq!(reported(&output), BTreeSet::from([line]));
}

#[test]
fn the_detect_secrets_plugin_reports_nothing_on_the_rust_toolchain_sources() {
    // detect-secrets is slow (about 9 s for 5 MB here): alloc only, the
    // sibling of std in both rust-src's and rust-docs' layouts.
    let Some(tree) = toolchain_sources() else {
        common::skip(
            "no Rust toolchain sources under ~/.rustup",
            "rustup component add rust-src, or the rust-docs component",
        );
        return;
    };
    let parent = tree.parent().unwrap();
    assert!(parent.join("alloc").is_dir(), "{}", parent.display());
    if let Some(found) = detect_secrets(parent, &[Path::new("alloc")]) {
        assert_eq!(found, BTreeSet::new());
    }
}
