//! Shared test support: real databases in private namespaces, and the real
//! server on a random port.
#![allow(dead_code)]

pub mod check;
pub mod client;
pub mod console;
pub mod counting;
pub mod envoy;
pub mod forward;
pub mod gateway;
pub mod http;
pub mod leak_report;
pub mod otlp;
pub mod pg_server;
pub mod pgbouncer;
pub mod process;
pub mod proxy;
pub mod python;
pub mod redis;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_tls;
pub mod revocation;

use std::{sync::Arc, time::Duration};

use keyward::{
    config::Config,
    startup::{Application, State},
    store::KeyStore,
};
use tokio::{sync::oneshot, task::JoinHandle};

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Whether missing services must fail tests (CI) rather than skip them.
pub fn required() -> bool {
    std::env::var_os("CI").is_some()
}

/// A test that cannot run here: fails under CI, otherwise says so in one
/// line naming what to install. The line goes to the process's stderr
/// itself, since libtest swallows `eprintln!` of a test that passes.
pub fn skip(missing: &str, install: &str) {
    assert!(!required(), "CI is set but {missing} ({install})");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: {missing} ({install}); set CI to make this fail",
        std::thread::current().name().unwrap_or("a test")
    );
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `program args…` runs and exits 0 here.
pub fn runs(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

/// A database for one test: a fresh SQLite file or a fresh Postgres schema,
/// removed when dropped.
pub struct TestDb {
    pub url: String,
    pg_schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("keyward.db").display());
        Self {
            url,
            pg_schema: None,
            _dir: Some(dir),
        }
    }

    /// A private schema in the test Postgres (`KEYWARD_TEST_POSTGRES_URL`,
    /// default the local `test` database). `None` means skip: only allowed
    /// outside CI.
    pub async fn postgres() -> Option<Self> {
        let base =
            std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let connected =
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(&base)).await;
        let pool = match connected {
            Ok(Ok(pool)) => pool,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                skip(
                    &format!("Postgres at {base} is unreachable: {why}"),
                    "start PostgreSQL or set KEYWARD_TEST_POSTGRES_URL; .ci/deps installs it",
                );
                return None;
            }
        };
        let schema = unique("kwtest");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Some(Self {
            url,
            pg_schema: Some((base, schema)),
            _dir: None,
        })
    }

    /// The Postgres server URL (no schema option) and this test's schema.
    pub fn pg_schema(&self) -> Option<(&str, &str)> {
        self.pg_schema
            .as_ref()
            .map(|(base, schema)| (base.as_str(), schema.as_str()))
    }

    pub async fn store(&self) -> Arc<dyn KeyStore> {
        let store = keyward::store::connect(&self.url, &Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, schema)) = self.pg_schema.take() else {
            return;
        };
        // Drop runs outside any runtime: use a small one of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                    // Never hang a test run on a lock some pool still holds.
                    let _ = sqlx::query("SET lock_timeout = '5s'").execute(&pool).await;
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                            .execute(&pool)
                            .await;
                }
            });
        })
        .join();
    }
}

/// Runs a test body against SQLite and, when reachable, Postgres.
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$body($crate::common::TestDb::sqlite()).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) = $crate::common::TestDb::postgres().await {
                    super::$body(db).await;
                }
            }
        }
    };
}

/// A keyward server running in this process on a random port.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// Where `/metrics` is served (with `--metrics-listen`).
    pub metrics: Option<std::net::SocketAddr>,
    pub state: State,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn config(db_url: &str, extra: &[&str]) -> Config {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        db_url,
        "--drain-timeout",
        "2s",
    ];
    args.extend_from_slice(extra);
    Config::from_args(args).unwrap()
}

impl TestApp {
    pub async fn spawn(db: &TestDb) -> Self {
        Self::spawn_with(config(&db.url, &[]), None).await
    }

    /// Starts a server; with `store`, over that store instead of the URL's.
    pub async fn spawn_with(config: Config, store: Option<Arc<dyn KeyStore>>) -> Self {
        let app = match store {
            Some(store) => Application::build_with_store(config, store).await,
            None => Application::build(config).await,
        }
        .unwrap();
        let addr = app.local_addr();
        let metrics = app.metrics_addr();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics,
            state,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client whose admin calls carry a freshly bootstrapped admin key.
    pub async fn api(&self) -> client::Api {
        let admin = self.bootstrap().await;
        client::Api::connect(self.url(), admin).await
    }

    /// A client whose admin calls carry `admin` (a key another replica of
    /// the same store bootstrapped, say).
    pub async fn api_with(&self, admin: &str) -> client::Api {
        client::Api::connect(self.url(), admin).await
    }

    /// A client without an admin key: Verify and Check need none.
    pub async fn anonymous(&self) -> client::Api {
        self.api_with("").await
    }

    /// Writes an all-projects admin key, as `keyward admin bootstrap` does.
    pub async fn bootstrap(&self) -> String {
        let label = unique("admin");
        let (secret, _) = self.state.admin.bootstrap(label).await.unwrap();
        secret.into_exposed()
    }

    /// The Prometheus text `/metrics` serves now.
    pub async fn scrape(&self) -> String {
        let addr = self.metrics.expect("started without --metrics-listen");
        let reply = http::request(addr, "GET", "/metrics", &[], b"").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        String::from_utf8(reply.body).unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Everything the database holds, as text: the raw SQLite files (WAL
/// included), or every Postgres row as JSON.
pub async fn dump_database(db: &TestDb) -> String {
    if let Some(path) = db.url.strip_prefix("sqlite:") {
        let mut text = String::new();
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        return text;
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut text = String::new();
    for table in ["keys", "audit_events"] {
        let sql = format!("SELECT row_to_json(t)::text FROM {table} t");
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap();
        text.push_str(&rows.join("\n"));
    }
    text
}
