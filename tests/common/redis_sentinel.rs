//! A private Sentinel setup for tests: a master, one replica and three
//! sentinels (`redis-sentinel`, Debian package redis-sentinel) on free
//! loopback ports, with a one-second down-after so fail-overs take seconds.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::free_port;

pub const MASTER_NAME: &str = "kwmaster";

pub struct Sentinels {
    /// Data nodes: (port, process); the master first at start.
    servers: Vec<(u16, Option<Child>)>,
    sentinels: Vec<(u16, Child)>,
    dir: tempfile::TempDir,
}

async fn query<T: ::redis::FromRedisValue>(port: u16, cmd: &mut ::redis::Cmd) -> Result<T, String> {
    let client =
        ::redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let run = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(2), run).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn server(port: u16, replica_of: Option<u16>) -> Child {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    if let Some(master) = replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &master.to_string()]);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts")
}

async fn poll(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ok().await {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Sentinels {
    /// `None` (skip) when redis-sentinel is missing, outside CI.
    pub async fn start() -> Option<Self> {
        if !super::runs("redis-sentinel", &["--version"]) {
            super::skip(
                "redis-sentinel is not installed",
                "apt-get install redis-sentinel, or run .ci/deps",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (master, replica) = (free_port(), free_port());
        let servers = vec![
            (master, Some(server(master, None))),
            (replica, Some(server(replica, Some(master)))),
        ];
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n",
                    dir.path().display()
                ),
            )
            .unwrap();
            let child = Command::new("redis-sentinel")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-sentinel starts");
            sentinels.push((port, child));
        }
        let setup = Self {
            servers,
            sentinels,
            dir,
        };
        poll("the replica is in sync", async || {
            query::<String>(replica, ::redis::cmd("INFO").arg("replication"))
                .await
                .is_ok_and(|i| i.contains("master_link_status:up"))
        })
        .await;
        // Each sentinel knows the replica and the two other sentinels, so
        // a fail-over can be agreed.
        for &(port, _) in &setup.sentinels {
            poll(
                "the sentinels know each other and the replica",
                async || {
                    let others: Result<Vec<::redis::Value>, _> = query(
                        port,
                        ::redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER_NAME),
                    )
                    .await;
                    let replicas: Result<Vec<::redis::Value>, _> = query(
                        port,
                        ::redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
                    )
                    .await;
                    others.is_ok_and(|o| o.len() == 2) && replicas.is_ok_and(|r| r.len() == 1)
                },
            )
            .await;
        }
        Some(setup)
    }

    pub fn url(&self) -> String {
        let list: Vec<String> = self
            .sentinels
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", list.join(","))
    }

    /// The master's port, as the first sentinel that answers says.
    pub async fn master(&self) -> u16 {
        for &(port, _) in &self.sentinels {
            let addr: Result<(String, u16), _> = query(
                port,
                ::redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(MASTER_NAME),
            )
            .await;
            if let Ok((_, p)) = addr {
                return p;
            }
        }
        panic!("no sentinel answers");
    }

    /// Waits until every sentinel names a master other than `old`, and
    /// that server says it is master.
    async fn wait_moved_from(&self, old: u16) -> u16 {
        let mut new = old;
        poll("the sentinels name a new master", async || {
            new = self.master().await;
            if new == old {
                return false;
            }
            let role: Result<Vec<::redis::Value>, _> = query(new, &mut ::redis::cmd("ROLE")).await;
            role.is_ok_and(
                |r| matches!(r.first(), Some(::redis::Value::BulkString(b)) if b == b"master"),
            )
        })
        .await;
        new
    }

    /// `SENTINEL FAILOVER`: the replica is promoted, the old master demoted
    /// (it stays up, as a replica). Returns (old, new) master ports.
    pub async fn failover(&self) -> (u16, u16) {
        let old = self.master().await;
        let _: String = query(
            self.sentinels[0].0,
            ::redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME),
        )
        .await
        .expect("SENTINEL FAILOVER");
        (old, self.wait_moved_from(old).await)
    }

    /// Kills the master; returns (old, new) once a replica took over.
    pub async fn kill_master(&mut self) -> (u16, u16) {
        let old = self.master().await;
        let node = self.servers.iter_mut().find(|(p, _)| *p == old).unwrap();
        if let Some(mut child) = node.1.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        (old, self.wait_moved_from(old).await)
    }

    /// Waits until the current master has a replica in sync again.
    pub async fn wait_replicated(&self) {
        let master = self.master().await;
        poll("the new master has a replica", async || {
            query::<String>(master, ::redis::cmd("INFO").arg("replication"))
                .await
                .is_ok_and(|i| i.contains("connected_slaves:1"))
        })
        .await;
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for (_, child) in &mut self.servers {
            if let Some(child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
