//! The real `keyward serve` binary in a process of its own, for tests that
//! measure the server as the kernel sees it (its RSS) or need it apart from
//! the test's own runtime.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use super::TestDb;

pub const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// The binary to run: this build's, unless `KEYWARD_TEST_BINARY` names
/// another (a release build to measure, or an older one to compare).
pub fn binary() -> String {
    std::env::var("KEYWARD_TEST_BINARY").unwrap_or_else(|_| BIN.to_owned())
}

/// A `keyward serve` process over `db`, its JSON logs kept; killed when
/// dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when started with `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `keyward serve --listen 127.0.0.1:0` with `args` and waits for
    /// it to listen.
    pub fn start(db: &TestDb, args: &[&str]) -> Self {
        Self::start_with_env(db, args, &[])
    }

    /// As `start`, with `env` set too; with `--metrics-listen` among `args`
    /// it also waits for the metrics listener and records its address.
    pub fn start_with_env(db: &TestDb, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("KEYWARD_DATABASE_URL", &db.url)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                    let addr = event["addr"].as_str().unwrap_or_default().to_owned();
                    match event["message"].as_str() {
                        Some("keyward listening") => {
                            let _ = tx.send((false, addr));
                        }
                        Some("metrics at /metrics") => {
                            let _ = tx.send((true, addr));
                        }
                        _ => {}
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let wants_metrics = args.contains(&"--metrics-listen");
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || (wants_metrics && metrics.is_none()) {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((false, a)) => addr = Some(a.parse().unwrap()),
                Ok((true, a)) => metrics = Some(a.parse().unwrap()),
                Err(_) => {
                    let _ = child.kill();
                    panic!("server did not start: {}", logs.lock().unwrap().join("\n"));
                }
            }
        }
        Self {
            child,
            addr: addr.unwrap(),
            metrics,
            logs,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of this server whose admin calls carry `admin`.
    pub async fn api(&self, admin: &str) -> super::client::Api {
        super::client::Api::connect(self.url(), admin).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then whether it exited 0 (graceful shutdown does) and the
    /// logs it wrote.
    pub fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        // The reader thread may still hold the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let logs = self.logs.lock().unwrap().join("\n");
        (status.success(), logs)
    }

    /// Resident memory of the server process, in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }
}

/// Writes an all-projects admin key into `db` with `keyward admin bootstrap`.
pub fn bootstrap(db: &TestDb) -> String {
    let output = Command::new(binary())
        .args(["admin", "bootstrap"])
        .env("KEYWARD_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bootstrap failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
