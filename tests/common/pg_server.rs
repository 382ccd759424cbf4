//! A private Postgres server for one test: initdb in a temp dir, started on
//! a free loopback port, stopped (or killed) by the test and always on drop;
//! never the shared server. Streaming replicas come from pg_basebackup -R.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::free_port;

/// Where Debian puts the server binaries (not on PATH).
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_basebackup").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// The server binaries, or `None` after `skip` (outside CI only).
pub fn require() -> Option<PathBuf> {
    let found = bin_dir();
    if found.is_none() {
        super::skip(
            "the PostgreSQL server binaries (initdb, pg_basebackup) are not installed",
            "apt-get install -y postgresql; .ci/deps installs it",
        );
    }
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program` as the `postgres` user when we are root (the server refuses
/// to run as root): setpriv execs in place, so the child is the program.
fn command(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

fn owned_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    dir
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct PgServer {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    settings: Vec<String>,
}

impl PgServer {
    /// A fresh primary (trust auth on loopback, replication allowed), with
    /// `settings` (`name=value`) on its command line.
    pub fn primary(bin: &Path, settings: &[&str]) -> Self {
        let mut server = Self::init(bin);
        server.start_with(settings);
        server
    }

    /// A fresh data directory, not started: files can go in it first.
    pub fn init(bin: &Path) -> Self {
        let dir = owned_dir();
        let data = dir.path().join("data");
        let mut initdb = command(bin, "initdb");
        initdb
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data);
        run(initdb, "initdb");
        Self {
            bin: bin.to_owned(),
            child: None,
            port: free_port(),
            dir,
            settings: Vec::new(),
        }
    }

    /// A streaming replica of `primary` (pg_basebackup -R), started.
    pub fn replica_of(primary: &PgServer) -> Self {
        let dir = owned_dir();
        let data = dir.path().join("data");
        let mut backup = command(&primary.bin, "pg_basebackup");
        backup
            .args(["-h", "127.0.0.1", "-U", "postgres", "-R", "-X", "stream"])
            .args(["-p", &primary.port.to_string(), "-D"])
            .arg(&data);
        run(backup, "pg_basebackup");
        let mut server = Self {
            bin: primary.bin.clone(),
            child: None,
            port: free_port(),
            dir,
            settings: primary.settings.clone(),
        };
        server.start();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes `name` into the data directory, readable by the server only
    /// (Postgres refuses a key file others can read).
    pub fn write_private(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.data_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&path);
                    c
                },
                "chown",
            );
        }
        path
    }

    /// Starts (or restarts) the server with `extra` settings too, and
    /// waits until it accepts connections.
    pub fn start_with(&mut self, extra: &[&str]) {
        self.settings.extend(extra.iter().map(|s| (*s).to_owned()));
        self.start();
    }

    fn start(&mut self) {
        let mut cmd = command(&self.bin, "postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]);
        for setting in &self.settings {
            cmd.args(["-c", setting]);
        }
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        self.child = Some(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !super::runs(
            &self.bin.join("pg_isready").display().to_string(),
            &["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"],
        ) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` with `params`.
    pub fn url(&self, params: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres{params}",
            self.port
        )
    }

    /// Ends a standby's recovery: it takes writes from now on.
    pub fn promote(&self) {
        let mut promote = command(&self.bin, "pg_ctl");
        promote
            .args(["promote", "-w", "-t", "20", "-D"])
            .arg(self.data_dir());
        run(promote, "pg_ctl promote");
    }

    /// Stops the server: `INT` is a fast shutdown, `QUIT` an immediate one
    /// (as a crash).
    pub fn stop(&mut self, signal: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop("QUIT");
    }
}
