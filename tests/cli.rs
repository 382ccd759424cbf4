//! The `keyward` binary as a user runs it: `serve`, `admin bootstrap` and the
//! `keys` client, against SQLite and Postgres, with debug logs captured and
//! searched for secrets.

mod common;

use std::{
    process::{Command, Output},
    time::Duration,
};

use common::{
    TestDb,
    process::{BIN, ServerProcess},
};

fn keys(server: &ServerProcess, admin: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("keys")
        .args(args)
        .env("KEYWARD_SERVER", server.url())
        .env("KEYWARD_ADMIN_KEY", admin)
        .output()
        .unwrap()
}

fn verify(server: &ServerProcess, key: &str, scopes: &[&str]) -> Output {
    let mut args = vec!["verify"];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    Command::new(BIN)
        .arg("keys")
        .args(&args)
        .env("KEYWARD_SERVER", server.url())
        .env("KEYWARD_KEY", key)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

fn json(output: Output) -> serde_json::Value {
    serde_json::from_str(&ok(output)).unwrap()
}

fn quickstart(db: &TestDb) {
    // Usage shows up in `keys usage` a moment after the calls.
    let server = ServerProcess::start(db, &["--log", "debug", "--usage-flush-interval", "200ms"]);

    // Bootstrap works while the server runs and prints only the key.
    let boot = Command::new(BIN)
        .args(["admin", "bootstrap"])
        .env("KEYWARD_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let admin = ok(boot);
    assert_eq!(
        admin.lines().count(),
        1,
        "bootstrap prints the key alone: {admin:?}"
    );
    let admin = admin.trim().to_owned();
    assert!(admin.starts_with("keyward_"));

    let issued = json(keys(
        &server,
        &admin,
        &[
            "--json",
            "issue",
            "--project",
            "acme",
            "--label",
            "checkout",
            "--scope",
            "orders:read",
        ],
    ));
    let key = issued["key"].as_str().unwrap().to_owned();
    let id = issued["info"]["id"].as_str().unwrap().to_owned();

    // The human form prints the key alone on the first line.
    let human = ok(keys(
        &server,
        &admin,
        &["issue", "--project", "acme", "--label", "other"],
    ));
    assert!(human.lines().next().unwrap().starts_with("acme_"));

    let allowed = verify(&server, &key, &["orders:read"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stdout(&allowed));
    let denied = verify(&server, &key, &["orders:write"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        stdout(&denied).contains("INSUFFICIENT_SCOPE"),
        "{}",
        stdout(&denied)
    );

    let rotated = json(keys(
        &server,
        &admin,
        &["--json", "rotate", &id, "--grace", "1s"],
    ));
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let new_id = rotated["info"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        verify(&server, &key, &["orders:read"]).status.code(),
        Some(0),
        "old key works during grace"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let old = verify(&server, &key, &["orders:read"]);
    assert_eq!(old.status.code(), Some(1));
    assert!(stdout(&old).contains("REVOKED"), "{}", stdout(&old));
    assert_eq!(
        verify(&server, &new_key, &["orders:read"]).status.code(),
        Some(0)
    );

    ok(keys(
        &server,
        &admin,
        &["revoke", &new_id, "--reason", "done"],
    ));
    let revoked = verify(&server, &new_key, &[]);
    assert!(stdout(&revoked).contains("REVOKED"), "{}", stdout(&revoked));

    // The first key's calls: allowed, wrong scope, allowed in grace, revoked.
    std::thread::sleep(Duration::from_millis(800));
    let usage = json(keys(
        &server,
        &admin,
        &["--json", "usage", &id, "--since", "1h", "--bucket", "1m"],
    ));
    // The proto3 JSON mapping: durations as `60s`, 64-bit integers as
    // strings, zeros left out.
    assert_eq!(usage["bucket"], "60s");
    let series = usage["series"].as_array().unwrap();
    let count = |v: &serde_json::Value| v.as_str().map_or(0, |n| n.parse::<i64>().unwrap());
    let total = |field: &str| -> i64 { series.iter().map(|p| count(&p[field])).sum() };
    assert_eq!((total("allowed"), total("denied")), (2, 2), "{usage}");
    let table = ok(keys(&server, &admin, &["usage", "--project", "acme"]));
    assert!(
        table.contains("INSUFFICIENT_SCOPE 1")
            && table.contains("REVOKED")
            && table.contains("busiest keys")
            && table.contains(&id),
        "{table}"
    );

    let listed = json(keys(
        &server,
        &admin,
        &["--json", "list", "--project", "acme"],
    ));
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);
    let table = ok(keys(
        &server,
        &admin,
        &["list", "--project", "acme", "--status", "revoked"],
    ));
    assert!(table.contains(&id) && table.contains(&new_id), "{table}");

    // The audit trail of the first key: issued, then rotated.
    let audit = Command::new(BIN)
        .args(["audit", "--json", "--key-id", &id])
        .env("KEYWARD_SERVER", server.url())
        .env("KEYWARD_ADMIN_KEY", &admin)
        .output()
        .unwrap();
    let audit = json(audit);
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["rotate", "issue"], "newest first");
    let details: serde_json::Value =
        serde_json::from_str(audit["events"][0]["detailsJson"].as_str().unwrap()).unwrap();
    assert_eq!(details["new_key_id"], new_id.as_str());
    let table = Command::new(BIN)
        .args(["audit", "--action", "revoke", "--since", "1h"])
        .env("KEYWARD_SERVER", server.url())
        .env("KEYWARD_ADMIN_KEY", &admin)
        .output()
        .unwrap();
    let table = ok(table);
    assert!(
        table.contains("revoke") && table.contains(&new_id),
        "{table}"
    );

    let (clean_exit, logs) = server.terminate();
    assert!(clean_exit, "SIGTERM should shut down cleanly");
    assert!(
        logs.contains("keyward stopped"),
        "graceful shutdown is logged"
    );
    assert!(logs.contains("\"level\":\"DEBUG\""), "debug logging was on");
    for secret in [&admin, &key, &new_key] {
        let body = &secret[secret.len() - 49..secret.len() - 6];
        assert!(!logs.contains(body), "a key's secret reached the logs");
    }
}

#[test]
fn quickstart_on_sqlite() {
    quickstart(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    tokio::task::spawn_blocking(move || quickstart(&db))
        .await
        .unwrap();
}

#[test]
fn migrate_and_help() {
    let db = TestDb::sqlite();
    let migrate = Command::new(BIN)
        .arg("migrate")
        .env("KEYWARD_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["keys", "--help"],
        &["keys", "verify", "--help"],
    ] {
        let help = Command::new(BIN).args(args).output().unwrap();
        assert!(help.status.success(), "{args:?}");
        assert!(!help.stdout.is_empty());
    }
    let serve_help = String::from_utf8(
        Command::new(BIN)
            .args(["serve", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for var in [
        "KEYWARD_LISTEN",
        "KEYWARD_DATABASE_URL",
        "KEYWARD_L1_TTL",
        "KEYWARD_NO_MIGRATE",
    ] {
        assert!(serve_help.contains(var), "serve --help documents {var}");
    }
}

#[test]
fn a_bad_database_url_fails_clearly() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KEYWARD_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported database URL"), "{err}");
}
