//! `keyward config check`: the settings `serve` would start with, checked
//! without opening the database or a port; and secrets read from files.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// `keyward config check ARGS` with exactly `env` as its environment.
fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(["config", "check"])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_defaults_pass_with_one_line_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never-created.db");
    let url = format!("sqlite:{}", db.display());
    let out = check(
        &["--listen", "[::]:50051"],
        &[("KEYWARD_DATABASE_URL", &url)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("config OK: listen [::]:50051, database sqlite"),
        "{stdout}"
    );
    assert!(!db.exists(), "config check opened the database");
}

#[test]
fn a_config_file_with_an_unknown_table_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    // What the chart's full-values example once held: keyward exited at start.
    std::fs::write(&path, "[cache]\nl1_ttl = \"10s\"\n").unwrap();
    let out = check(&["--config", path.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        said(&out).contains("unknown field `cache`"),
        "{}",
        said(&out)
    );

    std::fs::write(&path, "[ext_authz]\nobserve = true\n").unwrap();
    let out = check(&["--config", path.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", said(&out));
}

#[test]
fn bad_flags_and_environment_fail() {
    for (args, env, expect) in [
        (&["--listen", "nowhere"][..], &[][..], "--listen"),
        (&[][..], &[("KEYWARD_L1_TTL", "soon")][..], "--l1-ttl"),
        (&["--tls-cert", "a.crt"][..], &[][..], "--tls-key"),
        (
            &[
                "--tls-cert",
                "/nonexistent/a.crt",
                "--tls-key",
                "/nonexistent/a.key",
            ][..],
            &[][..],
            "/nonexistent/a.crt",
        ),
        (
            &[][..],
            &[("KEYWARD_DATABASE_URL", "mysql://u:hunter2@db/x")][..],
            "neither postgres",
        ),
        (
            &[][..],
            &[("KEYWARD_REDIS_URL", "http://:hunter2@cache")][..],
            "the Redis URL's scheme must be",
        ),
        (
            &[][..],
            &[("KEYWARD_REDIS_URL", "redis+sentinel://:hunter2@a,b")][..],
            "names the master after the hosts",
        ),
        (
            &["--redis-tls-ca", "/nonexistent/ca.pem"][..],
            &[("KEYWARD_REDIS_URL", "rediss://:hunter2@cache")][..],
            "cannot read /nonexistent/ca.pem",
        ),
        (
            &["--redis-tls-cert", "/nonexistent/c.pem"][..],
            &[][..],
            "--redis-tls-cert",
        ),
        (&["--console", "maybe"][..], &[][..], "--console"),
        (
            &[][..],
            &[("KEYWARD_CONSOLE_SESSION_TTL", "10s")][..],
            "at least 1m",
        ),
    ] {
        let out = check(args, env);
        let text = said(&out);
        assert!(!out.status.success(), "{args:?} {env:?} passed: {text}");
        assert!(text.contains(expect), "{args:?} {env:?}: {text}");
        assert!(!text.contains("hunter2"), "a password in: {text}");
    }
}

#[test]
fn urls_come_from_files_without_their_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("database-url");
    let redis_file = dir.path().join("redis-url");
    std::fs::write(&db_file, "postgres://u:hunter2@db/keyward\n").unwrap();
    std::fs::write(&redis_file, "redis://:hunter2@cache:6379\n").unwrap();
    let (db_path, redis_path) = (db_file.to_str().unwrap(), redis_file.to_str().unwrap());
    let out = check(
        &[],
        &[
            ("KEYWARD_DATABASE_URL_FILE", db_path),
            ("KEYWARD_REDIS_URL_FILE", redis_path),
        ],
    );
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    // Read from the files: the default SQLite URL would say sqlite.
    assert!(text.contains("database postgres, redis on"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let out = check(&["--database-url-file", "/nonexistent/url"], &[]);
    assert!(!out.status.success());
    assert!(
        said(&out).contains("cannot read /nonexistent/url"),
        "{}",
        said(&out)
    );
}

#[test]
fn sentinel_and_cluster_urls_pass_and_say_what_they_name() {
    for (url, expect) in [
        (
            "redis+sentinel://:hunter2@s1:26379,s2/mymaster/1",
            "redis on (sentinel master mymaster via s1:26379,s2:26379)",
        ),
        (
            "rediss+cluster://u:hunter2@n1:7000,n2:7001",
            "redis on (cluster via n1:7000,n2:7001)",
        ),
    ] {
        let out = check(&[], &[("KEYWARD_REDIS_URL", url)]);
        let text = said(&out);
        assert!(out.status.success(), "{url}: {text}");
        assert!(text.contains(expect), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    // TLS files are for TLS URLs only.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = check(
        &["--redis-tls-ca", ca.to_str().unwrap()],
        &[("KEYWARD_REDIS_URL", "redis://:hunter2@cache")],
    );
    assert!(!out.status.success());
    assert!(
        said(&out).contains("need a rediss:// URL"),
        "{}",
        said(&out)
    );
}

#[test]
fn a_url_and_its_file_together_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, "postgres://u:hunter2@db/keyward\n").unwrap();
    let path = file.to_str().unwrap();
    for (url_var, file_var, url) in [
        (
            "KEYWARD_DATABASE_URL",
            "KEYWARD_DATABASE_URL_FILE",
            "sqlite:x.db",
        ),
        (
            "KEYWARD_REDIS_URL",
            "KEYWARD_REDIS_URL_FILE",
            "redis://cache",
        ),
    ] {
        let out = check(&[], &[(url_var, url), (file_var, path)]);
        let text = said(&out);
        assert!(!out.status.success(), "{url_var} and {file_var}: {text}");
        assert!(text.contains("cannot be used with"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn postgres_host_lists_tls_files_and_the_read_url_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "only its presence is checked").unwrap();
    let ca = ca.to_str().unwrap();
    let good = "postgres://u:hunter2@a:5432,b:5433/k?target_session_attrs=read-write";
    let out = check(
        &[
            "--database-ssl-mode",
            "verify-full",
            "--database-ssl-root-cert",
            ca,
        ],
        &[
            ("KEYWARD_DATABASE_URL", good),
            ("KEYWARD_DATABASE_READ_URL", "postgres://u:hunter2@r1,r2/k"),
        ],
    );
    assert!(out.status.success(), "{}", said(&out));

    let refused = [
        (
            vec![],
            vec![(
                "KEYWARD_DATABASE_URL",
                "postgres://u:hunter2@a,b/k?target_session_attrs=writable",
            )],
            "target_session_attrs",
        ),
        (
            vec!["--database-ssl-root-cert", "/nonexistent/ca.pem"],
            vec![("KEYWARD_DATABASE_URL", good)],
            "--database-ssl-root-cert /nonexistent/ca.pem",
        ),
        (
            vec!["--database-ssl-mode", "verify"],
            vec![("KEYWARD_DATABASE_URL", good)],
            "not an sslmode",
        ),
        (
            vec!["--database-read-url", "postgres://u:hunter2@r/k"],
            vec![("KEYWARD_DATABASE_URL", "sqlite:k.db")],
            "needs a Postgres --database-url",
        ),
    ];
    for (args, env, why) in refused {
        let out = check(&args, &env);
        let text = said(&out);
        assert!(!out.status.success(), "{args:?} {env:?} passed: {text}");
        assert!(text.contains(why), "{why:?} not in: {text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
