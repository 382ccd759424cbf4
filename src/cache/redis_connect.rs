//! Opening connections to whatever `--redis-url` names (`redis_target.rs`):
//! one server, the master a Sentinel quorum names now, or a Cluster, with
//! the ACL user, password and TLS files of `--redis-*`.
//!
//! Every kind is one connection type, [`RedisConn`], so the L2, the rate
//! limiter and the bus's publisher run the same commands on any of them.
//! The pool (deadpool, with this module's manager) serves probes and
//! reconnects; the hot path keeps one multiplexed connection (`redis.rs`).

use std::{fmt, time::Duration};

use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo, RedisResult, TlsCertificates,
    aio::{ConnectionLike, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
};

use super::{
    redis_target::{RedisTarget, Topology},
    sentinel_watch::MasterWatch,
};

/// How often the sentinels are asked who is master.
const MASTER_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Credentials and TLS material for Redis, read once at start.
#[derive(Clone, Default)]
pub struct RedisAccess {
    /// ACL user; over the URL's.
    pub username: Option<String>,
    /// Over the URL's.
    pub password: Option<String>,
    /// PEM CA bundle the servers' certificates must chain to; unset: the
    /// system's roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and key, for servers that ask for one.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for RedisAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAccess")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca", &self.ca.is_some())
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Target(#[from] super::redis_target::TargetError),
    #[error("--redis-tls-ca, --redis-tls-cert and --redis-tls-key need a rediss:// URL")]
    TlsFilesWithoutTls,
    /// The client library refused the settings (its message names no secret).
    #[error("Redis client settings refused: {0}")]
    Client(String),
}

/// One connection to Redis, whatever its topology. Cheap to clone: every
/// clone shares the same multiplexed socket(s).
#[derive(Clone)]
pub enum RedisConn {
    /// One server, or the master a Sentinel named; with the generation of
    /// that naming (`sentinel_watch.rs`; always 0 without Sentinel).
    Server(MultiplexedConnection, u64),
    /// Routes each command to its slot's master; follows MOVED and ASK.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            RedisConn::Server(c, _) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            RedisConn::Server(c, _) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Server(c, _) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

enum Kind {
    Server(Client),
    /// Asked for the master at every connect, so a new connection after a
    /// fail-over goes to the new master.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

/// Opens [`RedisConn`]s to the configured target.
pub struct Connector {
    target: RedisTarget,
    access: RedisAccess,
    timeout: Duration,
    kind: Kind,
    master: MasterWatch,
}

impl Connector {
    pub fn new(url: &str, access: RedisAccess, timeout: Duration) -> Result<Self, ConnectError> {
        let target = RedisTarget::parse(url)?;
        if !target.tls && (access.ca.is_some() || access.client.is_some()) {
            return Err(ConnectError::TlsFilesWithoutTls);
        }
        let mut connector = Self {
            kind: Kind::Server(Client::open("redis://127.0.0.1").expect("a valid URL")),
            target,
            access,
            timeout,
            master: MasterWatch::default(),
        };
        connector.kind = connector
            .build()
            .map_err(|e| ConnectError::Client(e.to_string()))?;
        Ok(connector)
    }

    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    fn username(&self) -> Option<&str> {
        self.access
            .username
            .as_deref()
            .or(self.target.username.as_deref())
    }

    fn password(&self) -> Option<&str> {
        self.access
            .password
            .as_deref()
            .or(self.target.password.as_deref())
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        (self.access.ca.is_some() || self.access.client.is_some()).then(|| TlsCertificates {
            client_tls: self
                .access
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.access.ca.clone(),
        })
    }

    fn addr(&self, host: &str, port: u16) -> ConnectionAddr {
        if self.target.tls {
            ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        }
    }

    fn settings(&self, db: i64) -> RedisConnectionInfo {
        let mut settings = RedisConnectionInfo::default().set_db(db);
        if let Some(user) = self.username() {
            settings = settings.set_username(user);
        }
        if let Some(password) = self.password() {
            settings = settings.set_password(password);
        }
        settings
    }

    fn build(&self) -> RedisResult<Kind> {
        Ok(match &self.target.topology {
            Topology::Single { host, port, db } => {
                Kind::Server(self.server_client(self.addr(host, *port), *db)?)
            }
            Topology::Unix { path, db } => {
                Kind::Server(self.server_client(ConnectionAddr::Unix(path.into()), *db)?)
            }
            Topology::Sentinel {
                sentinels,
                master,
                db,
            } => {
                let addrs = sentinels.iter().map(|(h, p)| self.addr(h, *p));
                let mut builder =
                    SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
                        .set_client_to_redis_db(*db);
                if let Some(user) = self.username() {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = self.password() {
                    builder = builder.set_client_to_redis_password(password);
                }
                if self.target.tls {
                    builder = builder
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
                    if let Some(certs) = self.certificates() {
                        builder = builder
                            .set_client_to_redis_certificates(certs.clone())
                            .set_client_to_sentinel_certificates(certs);
                    }
                }
                Kind::Sentinel(tokio::sync::Mutex::new(builder.build()?))
            }
            Topology::Cluster { seeds } => Kind::Cluster(self.cluster_builder(seeds)?.build()?),
        })
    }

    fn server_client(&self, addr: ConnectionAddr, db: i64) -> RedisResult<Client> {
        let info: ConnectionInfo = addr
            .into_connection_info()?
            .set_redis_settings(self.settings(db));
        match self.certificates() {
            Some(certs) => Client::build_with_tls(info, certs),
            None => Client::open(info),
        }
    }

    fn cluster_builder(&self, seeds: &[(String, u16)]) -> RedisResult<ClusterClientBuilder> {
        let nodes = seeds
            .iter()
            .map(|(h, p)| {
                self.addr(h, *p)
                    .into_connection_info()
                    .map(|i| i.set_redis_settings(self.settings(0)))
            })
            .collect::<RedisResult<Vec<_>>>()?;
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(self.timeout.max(Duration::from_millis(500)))
            .response_timeout(self.timeout);
        if let Some(user) = self.username() {
            builder = builder.username(user);
        }
        if let Some(password) = self.password() {
            builder = builder.password(password);
        }
        if self.target.tls {
            builder = builder.tls(redis::TlsMode::Secure);
            if let Some(certs) = self.certificates() {
                builder = builder.certs(certs);
            }
        }
        Ok(builder)
    }

    /// A client for the server that takes writes now: the one server, or
    /// the master the sentinels name (asked now). Not for a cluster.
    pub async fn server(&self) -> RedisResult<Client> {
        match &self.kind {
            Kind::Server(client) => Ok(client.clone()),
            Kind::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                self.master
                    .note(client.get_connection_info().addr().to_string());
                Ok(client)
            }
            Kind::Cluster(_) => Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster has no single server",
            ))),
        }
    }

    /// A cluster client whose RESP3 pushes (sharded pub/sub) go to `push`.
    pub fn cluster_with_pushes(
        &self,
        push: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> RedisResult<ClusterClient> {
        let Topology::Cluster { seeds } = &self.target.topology else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "not a cluster",
            )));
        };
        self.cluster_builder(seeds)?
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push)
            .build()
    }

    /// A new connection (for a Sentinel target, to the master named now).
    pub async fn open(&self) -> RedisResult<RedisConn> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(self.timeout));
        match &self.kind {
            Kind::Cluster(client) => client.get_async_connection().await.map(RedisConn::Cluster),
            _ => {
                let client = self.server().await?;
                // Read after `server()` noted whom it reached.
                let generation = self.master.generation();
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                if matches!(self.kind, Kind::Sentinel(_)) {
                    require_master(&mut conn).await?;
                }
                Ok(RedisConn::Server(conn, generation))
            }
        }
    }

    /// Whether `conn` still serves: it answers, and for a Sentinel target
    /// its server is still a master (after a fail-over the old master, if
    /// it comes back, is a replica that refuses writes).
    pub async fn check(&self, conn: &mut RedisConn) -> RedisResult<()> {
        if self.is_retired(conn) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                "opened to a server Sentinel no longer names master",
            )));
        }
        match (&self.kind, conn) {
            (Kind::Sentinel(_), RedisConn::Server(c, _)) => require_master(c).await,
            (_, conn) => redis::cmd("PING")
                .query_async::<String>(conn)
                .await
                .map(|_| ()),
        }
    }
}

impl Connector {
    /// Whether `conn` was opened to a master the sentinels have since
    /// replaced.
    pub fn is_retired(&self, conn: &RedisConn) -> bool {
        matches!(conn, RedisConn::Server(_, g) if *g != self.master.generation())
    }

    /// The generation of the master the sentinels name (0 without them).
    pub fn master_generation(&self) -> u64 {
        self.master.generation()
    }

    /// Behind Sentinel, asks who is master every [`MASTER_RECHECK`] until
    /// `stop`, so connections to a replaced master are retired even while
    /// that server still answers as one.
    pub fn watch_master(self: &std::sync::Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if !matches!(self.kind, Kind::Sentinel(_)) {
            return;
        }
        let connector = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MASTER_RECHECK);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let wait = connector.timeout.max(Duration::from_millis(500));
                // A quorum that cannot be asked changes nothing.
                let _ = tokio::time::timeout(wait, connector.server()).await;
            }
        });
    }
}

async fn require_master(conn: &mut MultiplexedConnection) -> RedisResult<()> {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(conn).await?;
    match role.first() {
        Some(redis::Value::BulkString(b)) if b.as_slice() == b"master" => Ok(()),
        Some(redis::Value::SimpleString(s)) if s == "master" => Ok(()),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "the server Sentinel named is no longer the master",
        ))),
    }
}

/// deadpool's manager for [`RedisConn`].
pub struct Manager(pub std::sync::Arc<Connector>);

impl deadpool::managed::Manager for Manager {
    type Type = RedisConn;
    type Error = redis::RedisError;

    async fn create(&self) -> RedisResult<RedisConn> {
        // Boxed: opening a cluster connection is a future deep enough that,
        // laid out inline in every caller's, crates using keyward's futures
        // (the benches) passed the compiler's recursion limit. Only
        // reconnects come here.
        Box::pin(self.0.open()).await
    }

    async fn recycle(
        &self,
        conn: &mut RedisConn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<redis::RedisError> {
        Ok(self.0.check(conn).await?)
    }
}

pub type Pool = deadpool::managed::Pool<Manager>;

/// A pool of `size` connections whose waits, connects and checks are all
/// bounded by `timeout`.
pub fn pool(connector: std::sync::Arc<Connector>, size: usize, timeout: Duration) -> Pool {
    Pool::builder(Manager(connector))
        .max_size(size.max(1))
        .timeouts(deadpool::managed::Timeouts {
            wait: Some(timeout),
            create: Some(timeout.max(Duration::from_millis(500))),
            recycle: Some(timeout),
        })
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .expect("a runtime and timeouts are set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_need_a_tls_url_and_access_hides_the_password() {
        let access = RedisAccess {
            password: Some("hunter2".into()),
            ca: Some(b"pem".to_vec()),
            ..RedisAccess::default()
        };
        assert!(!format!("{access:?}").contains("hunter2"));
        let refused = Connector::new("redis://h", access.clone(), Duration::from_millis(100));
        assert!(matches!(refused, Err(ConnectError::TlsFilesWithoutTls)));
        let access = RedisAccess { ca: None, ..access };
        for url in [
            "rediss://h",
            "rediss+cluster://a:1,b:2",
            "redis+sentinel://a,b/m",
        ] {
            Connector::new(url, access.clone(), Duration::from_millis(100)).unwrap();
        }
    }
}
