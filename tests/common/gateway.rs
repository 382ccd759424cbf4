//! Real nginx and Caddy as the test's own processes, on free ports, with
//! their configuration from `examples/` (ports swapped) in a temporary
//! directory that also holds their pid, logs, temp files and state.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::envoy::{Lines, Proc};
use super::free_port;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// Whether `program` runs here; otherwise skips (fails under CI).
pub fn available(program: &str, version_args: &[&str], install: &str) -> bool {
    let ok = super::runs(program, version_args);
    if !ok {
        super::skip(&format!("`{program}` is not installed"), install);
    }
    ok
}

/// A gateway process listening on `port`.
pub struct Gateway {
    pub proc: Proc,
    pub port: u16,
    pub logs: Lines,
    pub dir: tempfile::TempDir,
}

/// `examples/<file>` with each `from` replaced by its port, checked present.
fn config(file: &str, swaps: &[(&str, u16)]) -> String {
    let mut text = std::fs::read_to_string(format!("{EXAMPLES}/{file}")).unwrap();
    for (from, port) in swaps {
        assert!(text.contains(from), "examples/{file} lost `{from}`");
        let host = from.rsplit_once(':').map_or("", |(host, _)| host);
        text = text.replace(from, &format!("{host}:{port}"));
    }
    text
}

impl Gateway {
    /// nginx running `examples/nginx/nginx.conf` with prefix `dir`.
    pub async fn nginx(keyward_port: u16, upstream_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["logs", "temp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let port = free_port();
        let text = config(
            "nginx/nginx.conf",
            &[
                ("127.0.0.1:8000", port),
                ("127.0.0.1:50051", keyward_port),
                ("127.0.0.1:8080", upstream_port),
            ],
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, text).unwrap();
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("logs/error.log"))
            .args(["-g", "daemon off;"]);
        Self::spawn(command, port, dir).await
    }

    /// Caddy running `examples/caddy/Caddyfile`, its state in `dir`.
    pub async fn caddy(keyward_port: u16, upstream_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let text = config(
            "caddy/Caddyfile",
            &[
                ("http://:8001", port),
                ("127.0.0.1:50051", keyward_port),
                ("127.0.0.1:8080", upstream_port),
            ],
        );
        let conf = dir.path().join("Caddyfile");
        std::fs::write(&conf, text).unwrap();
        let mut command = Command::new("caddy");
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path());
        Self::spawn(command, port, dir).await
    }

    async fn spawn(mut command: Command, port: u16, dir: tempfile::TempDir) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Lines::default();
        logs.follow_all(child.stdout.take().unwrap());
        logs.follow_all(child.stderr.take().unwrap());
        let mut proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!("gateway exited ({status}): {:?}", logs.all());
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not listen: {:?}",
                logs.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            proc,
            port,
            logs,
            dir,
        }
    }

    /// Stops the gateway with SIGTERM, so that nginx's master stops its
    /// workers too (SIGKILL would leave them running), then waits.
    pub fn stop(&mut self) {
        let pid = self.proc.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.proc.kill();
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(Path::new(self.dir.path()).join("logs/error.log"))
            .unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}
