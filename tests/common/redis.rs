//! Redis for tests: the shared server (each test in its own namespace), or a
//! private `redis-server` a test can kill.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::free_port;

const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

async fn answers(url: &str) -> Result<(), String> {
    let client = ::redis::Client::open(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        ::redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// The shared test Redis (`KEYWARD_TEST_REDIS_URL`, default local 6379).
/// `None` means skip, allowed only outside CI.
pub async fn shared() -> Option<String> {
    let url = std::env::var("KEYWARD_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS.to_owned());
    match answers(&url).await {
        Ok(()) => Some(url),
        Err(why) => {
            super::skip(
                &format!("Redis at {url} is unreachable: {why}"),
                "start redis-server or set KEYWARD_TEST_REDIS_URL; .ci/deps installs it",
            );
            None
        }
    }
}

/// A namespace no other test uses.
pub fn namespace() -> String {
    format!("kwt_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

/// A `redis-server` of the test's own, on a free port: a test can stall,
/// freeze, kill and restart it.
pub struct OwnRedis {
    child: Child,
    pub url: String,
    port: u16,
    /// With append-only persistence: where its AOF lives.
    dir: Option<tempfile::TempDir>,
}

impl OwnRedis {
    /// `None` (skip) when `redis-server` is not installed, outside CI.
    pub async fn start() -> Option<Self> {
        Self::launch(free_port(), None).await
    }

    /// As [`OwnRedis::start`], persisting every write to an AOF
    /// (`appendfsync always`), so a restart brings the data back.
    pub async fn start_persistent() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        Self::launch(free_port(), Some(dir)).await
    }

    async fn launch(port: u16, dir: Option<tempfile::TempDir>) -> Option<Self> {
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            // DEBUG SLEEP, for stalls.
            "--enable-debug-command",
            "local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match &dir {
            Some(dir) => args.extend(
                [
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--dir",
                    dir.path().to_str().unwrap(),
                ]
                .map(String::from),
            ),
            None => args.extend(["--appendonly", "no"].map(String::from)),
        }
        let spawned = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                super::skip(
                    &format!("redis-server cannot start: {e}"),
                    "apt-get install redis-server, or run .ci/deps",
                );
                return None;
            }
        };
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if answers(&url).await.is_ok() {
                return Some(Self {
                    child,
                    url,
                    port,
                    dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not come up");
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port (and, if persistent, from its AOF).
    pub async fn restart(&mut self) {
        self.kill();
        let dir = self.dir.take();
        let started = Self::launch(self.port, dir)
            .await
            .expect("redis-server started once already");
        *self = started;
    }

    /// Freezes the process (SIGSTOP) or thaws it (SIGCONT).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Blocks the server for `seconds` (`DEBUG SLEEP`), as a slow command
    /// or a fork stall would; returns when it answers again.
    pub async fn stall(&self, seconds: f64) {
        let client = ::redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = ::redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(seconds)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
