//! A private PgBouncer in front of the test Postgres, on a free port, for one
//! test's schema; never the system's pgbouncer service.

use std::{
    os::unix::fs::PermissionsExt,
    process::{Child, Command, Stdio},
    time::Duration,
};

use sqlx::postgres::PgConnectOptions;

pub struct PgBouncer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The Debian package installs it outside root's usual PATH.
fn binary() -> Option<&'static str> {
    ["pgbouncer", "/usr/sbin/pgbouncer"]
        .into_iter()
        .find(|bin| Command::new(bin).arg("--version").output().is_ok())
}

impl PgBouncer {
    /// PgBouncer in `pool_mode` (`session` or `transaction`) with
    /// `pool_size` server connections, whose database `test` is `base`'s
    /// database with `schema` first on the search path. `None` (skip) when
    /// pgbouncer is not installed, outside CI.
    pub async fn start(base: &str, schema: &str, pool_mode: &str, pool_size: u32) -> Option<Self> {
        let Some(bin) = binary() else {
            assert!(
                !super::required(),
                "CI is set but pgbouncer is not installed (apt-get install -y pgbouncer)"
            );
            eprintln!("SKIPPED: pgbouncer is not installed (apt-get install -y pgbouncer)");
            return None;
        };
        let server: PgConnectOptions = base.parse().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        // PgBouncer will not run as root; it drops to `postgres`, which must
        // still read its own files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // DISCARD ALL (the session-mode default) would also reset the search
        // path that connect_query set; only prepared statements matter here.
        let ini = format!(
            "[databases]\n\
             test = host={host} port={server_port} dbname={db} user={user} \
             connect_query='SET search_path TO {schema}'\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = any\n\
             pool_mode = {pool_mode}\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 500\n\
             server_reset_query = DEALLOCATE ALL\n\
             ignore_startup_parameters = extra_float_digits\n\
             pidfile =\n\
             logfile =\n",
            host = server.get_host(),
            server_port = server.get_port(),
            db = server.get_database().unwrap_or("test"),
            user = server.get_username(),
        );
        let path = dir.path().join("pgbouncer.ini");
        std::fs::write(&path, ini).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = std::fs::File::create(dir.path().join("pgbouncer.log")).unwrap();
        let mut command = Command::new(bin);
        if nix_is_root() {
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pgbouncer does not start");
        let bouncer = Self { child, port, dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(bouncer);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pgbouncer did not come up: {}", bouncer.log());
    }

    /// The URL clients use: the schema comes from PgBouncer's connect_query,
    /// since PgBouncer refuses the `options` startup parameter.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
