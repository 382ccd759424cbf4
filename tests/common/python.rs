//! Clients in Python (tests/python/) against the real server: one runner for
//! the grpcio contract and the Connect client, so both fail the same way.

/// Whether `python3` can import `modules` (comma-separated, as Python's
/// `import` takes them); when it cannot, says what to install (under CI the
/// test fails, as `skip` does).
pub fn available(modules: &str, install: &str) -> bool {
    let found = super::runs("python3", &["-c", &format!("import {modules}")]);
    if !found {
        super::skip(&format!("python3 lacks {modules}"), install);
    }
    found
}

/// Runs `tests/python/<script> <target>` with the admin key in its
/// environment (never on its command line) and asserts it exited 0 and
/// printed `finished`, its last line; the script's output is the message.
pub async fn run(script: &str, target: &str, admin_key: &str, finished: &str) {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .args([&path, target])
        .env("KEYWARD_ADMIN_KEY", admin_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(finished), "{script}: {stdout}");
}
