//! Redis for tests: the shared server (each test in its own namespace), or a
//! private `redis-server` a test can kill.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

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

/// A `redis-server` of the test's own, on a free port.
pub struct OwnRedis {
    child: Child,
    pub url: String,
}

impl OwnRedis {
    /// `None` (skip) when `redis-server` is not installed, outside CI.
    pub async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spawned = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
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
                return Some(Self { child, url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {port} did not come up");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
