//! A private Redis Cluster for tests: three masters and three replicas
//! (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`) on
//! free loopback ports, with a short node timeout so a killed master's
//! replica takes over within seconds.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::free_port;

/// Milliseconds before the cluster calls a silent node failed.
const NODE_TIMEOUT_MS: u32 = 1000;

pub struct Cluster {
    nodes: Vec<(u16, Option<Child>)>,
    dir: tempfile::TempDir,
}

async fn query(port: u16, cmd: &mut ::redis::Cmd) -> Result<String, String> {
    let client =
        ::redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let run = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(2), run).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

impl Cluster {
    /// `None` (skip) when redis-server or redis-cli is missing, outside CI.
    pub async fn start() -> Option<Self> {
        if !super::runs("redis-cli", &["--version"]) || !super::runs("redis-server", &["--version"])
        {
            super::skip(
                "redis-server or redis-cli is not installed",
                "apt-get install redis-server, or run .ci/deps",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_port();
            let child = Self::spawn(dir.path(), port);
            nodes.push((port, Some(child)));
        }
        let cluster = Self { nodes, dir };
        for (port, _) in &cluster.nodes {
            cluster.wait(*port, |_| true, "answer PING").await;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (port, _) in &cluster.nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok().await;
        // Every master has its replica attached, so a kill can fail over.
        for port in cluster.masters().await {
            cluster
                .wait(
                    port,
                    |info| info.contains("connected_slaves:1"),
                    "have a replica",
                )
                .await;
        }
        Some(cluster)
    }

    /// Each node in a directory of its own: replicas that load their sync
    /// file from a shared one would rename it over each other.
    fn node_dir(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
        dir.join(port.to_string())
    }

    /// The last lines of every node's log, for a failed wait.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (port, _) in &self.nodes {
            let path = Self::node_dir(self.dir.path(), *port).join("redis.log");
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!("--- node {port}\n");
            for line in &lines[lines.len().saturating_sub(15)..] {
                out += line;
                out.push('\n');
            }
        }
        out
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Child {
        let dir = Self::node_dir(dir, port);
        std::fs::create_dir(&dir).unwrap();
        let log = dir.join("redis.log");
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
                // A replica whose master went quiet (no writes, pings every
                // 10 s) would otherwise count its data too old to take over.
                "--cluster-replica-validity-factor",
                "0",
                "--repl-ping-replica-period",
                "1",
                "--dir",
                dir.to_str().unwrap(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                log.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts")
    }

    async fn wait(&self, port: u16, ok: impl Fn(&str) -> bool, what: &str) {
        let started = Instant::now();
        loop {
            let info = query(port, ::redis::cmd("INFO").arg("replication")).await;
            if info.as_deref().is_ok_and(&ok) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node {port} did not {what}: {info:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every live node says the cluster is ok and agrees on
    /// which masters serve all slots.
    pub async fn wait_ok(&self) {
        let started = Instant::now();
        loop {
            let mut ok = true;
            for port in self.live() {
                let info = query(port, ::redis::cmd("CLUSTER").arg("INFO")).await;
                ok &= info.is_ok_and(|i| {
                    i.contains("cluster_state:ok") && i.contains("cluster_slots_ok:16384")
                });
            }
            if ok {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the cluster did not become ok"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn live(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Seed nodes for keyward: every node, so any may be gone.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    async fn nodes_table(&self) -> String {
        for port in self.live() {
            if let Ok(table) = query(port, ::redis::cmd("CLUSTER").arg("NODES")).await {
                return table;
            }
        }
        panic!("no node answers CLUSTER NODES");
    }

    /// Ports of the live masters.
    pub async fn masters(&self) -> Vec<u16> {
        let table = self.nodes_table().await;
        table
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| port_of(l.split(' ').nth(1)?))
            .collect()
    }

    /// The port of the master serving `name`'s slot.
    pub async fn master_of(&self, name: &str) -> u16 {
        let port = self.live()[0];
        let slot: u16 = {
            let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            ::redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(name)
                .query_async(&mut conn)
                .await
                .unwrap()
        };
        let table = self.nodes_table().await;
        for line in table
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
        {
            let fields: Vec<&str> = line.split(' ').collect();
            for range in &fields[8.min(fields.len())..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    return port_of(fields[1]).unwrap();
                }
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// Moves `slots` slots from the master on `from` to the one on `to`
    /// (`redis-cli --cluster reshard`: MIGRATE key by key, so clients see
    /// ASK and then MOVED), returning when it is done.
    pub async fn reshard(&self, from: u16, to: u16, slots: u32) {
        let id = |port: u16| async move {
            query(port, ::redis::cmd("CLUSTER").arg("MYID"))
                .await
                .unwrap()
        };
        let (from_id, to_id) = (id(from).await, id(to).await);
        let out = tokio::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &from_id, "--cluster-to", &to_id])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "reshard failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        self.wait_ok().await;
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|(p, _)| *p == port).unwrap();
        if let Some(mut child) = node.1.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn port_of(addr: &str) -> Option<u16> {
    addr.split('@').next()?.rsplit(':').next()?.parse().ok()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
