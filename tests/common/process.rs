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
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `keyward serve --listen 127.0.0.1:0` with `args` and waits for
    /// it to listen.
    pub fn start(db: &TestDb, args: &[&str]) -> Self {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("KEYWARD_DATABASE_URL", &db.url)
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
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && event["message"] == "keyward listening"
                {
                    let _ = tx.send(event["addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", logs.lock().unwrap().join("\n"));
            }
        };
        Self { child, addr, logs }
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
