//! A private `redis-server` that speaks TLS only (`--port 0 --tls-port`),
//! with the certificate a test made, and one ACL user with a password (the
//! default user is off).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::free_port;

pub struct TlsRedis {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    /// `None` (skip) when redis-server is missing, outside CI. With
    /// `client_ca`, clients must present a certificate it signed.
    pub async fn start(
        cert: &str,
        key: &str,
        client_ca: Option<&str>,
        user: &str,
        password: &str,
    ) -> Option<Self> {
        if !super::runs("redis-server", &["--version"]) {
            super::skip(
                "redis-server is not installed",
                "apt-get install redis-server, or run .ci/deps",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (cert, key) = (file("server.crt", cert), file("server.key", key));
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--user", "default", "off"])
        .args([
            "--user",
            user,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ]);
        match client_ca {
            Some(ca) => {
                let ca = file("client-ca.crt", ca);
                cmd.args(["--tls-ca-cert-file", &ca, "--tls-auth-clients", "yes"]);
            }
            // redis-server wants a CA file even when it asks for no client
            // certificate: its own certificate's file serves.
            None => {
                cmd.args(["--tls-ca-cert-file", &cert, "--tls-auth-clients", "no"]);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "TLS redis-server on {port} did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Self { child, port, dir })
    }

    /// A file in the server's directory (for CA and password files).
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
