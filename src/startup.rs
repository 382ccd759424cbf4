//! Builds and runs the server. Tests use the same path as `keyward serve`:
//! `Application::build(config)` then `run_until_stopped`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::{server::NamedService, service::Routes};
use tonic_health::ServingStatus;
use tonic_reflection::pb::{
    v1::server_reflection_server::ServerReflectionServer,
    v1alpha::server_reflection_server::ServerReflectionServer as ServerReflectionServerV1Alpha,
};

use tokio_util::sync::CancellationToken;

use crate::{
    admin::Admin,
    authz::Authz,
    cache::{
        KeyLookup, LocalBus, OutboxTail, Publisher, RedisCache,
        bus::{PostgresBus, RedisBus},
    },
    config::{Config, DatabaseArgs},
    grpc::{
        MAX_REQUEST_BYTES,
        authorization_server::AuthorizationServer,
        ext_authz::{self, ExtAuthzService},
        key_service::KeyServiceImpl,
        reflection,
    },
    http,
    limit::{Limiter, RedisLimiter},
    proto::v1::key_service_server::KeyServiceServer,
    serve::{self, Handlers, Limits, Transport},
    store::{self, KeyStore, Pooler, TimeoutStore},
    telemetry,
    tls::ServerTls,
    usage::{UsageCounter, UsageWriter},
    verify::Verifier,
};

/// The parts of a running server, shared by its services.
#[derive(Clone)]
pub struct State {
    pub store: Arc<dyn KeyStore>,
    pub lookup: Arc<KeyLookup>,
    pub verifier: Verifier,
    pub admin: Arc<Admin>,
    /// Cancelled when the server stops: background tasks (the bus) end.
    pub stopping: CancellationToken,
    pub authz: Arc<Authz>,
    /// Writes counted usage; flushed a last time when the server stops.
    pub usage: Arc<UsageWriter>,
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
    state: State,
    drain_timeout: Duration,
    limits: Limits,
    /// Origins allowed to call Connect and gRPC-Web from a browser.
    cors: Vec<String>,
    /// `None`: plaintext.
    tls: Option<ServerTls>,
    /// `POST /leaks/github`, with `--leak-report-keys`.
    leaks: Option<http::leaks::GithubReports>,
    /// `None`: `--console false`.
    console: Option<http::console::ConsoleArgs>,
}

impl Application {
    /// Opens the store named by the config, migrates it unless told not to,
    /// and binds the listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // A bad config file is reported before anything is opened.
        config.file_settings()?;
        let options = config.store_options();
        if config.database.url().expose().starts_with("postgres") {
            check_sessions(&config.database, &options).await?;
        } else if options.read_url.is_some() {
            anyhow::bail!("--database-read-url needs a Postgres --database-url");
        }
        let store = store::connect(config.database.url().expose(), &options)
            .await
            .context("cannot open the database")?;
        Self::build_with_store(config, store).await
    }

    /// As [`Application::build`], over a store the caller made (tests wrap
    /// stores to count calls or inject failures).
    pub async fn build_with_store(
        config: Config,
        store: Arc<dyn KeyStore>,
    ) -> anyhow::Result<Self> {
        let settings = config.file_settings()?;
        // Installed first, so that every metric from here on is recorded.
        let metrics = match config.metrics_listen {
            Some(addr) => {
                let handle = telemetry::metrics::install();
                let listener = telemetry::metrics::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {addr}"))?;
                Some((listener, handle))
            }
            None => None,
        };
        let tls = config
            .tls
            .files()?
            .map(|files| ServerTls::load(files, config.tls.tls_reload_interval))
            .transpose()?;
        let store = TimeoutStore::wrap(
            store,
            config.lookup_timeout,
            config.database.database_timeout,
        );
        if !config.no_migrate {
            store
                .migrate()
                .await
                .context("cannot migrate the database")?;
        }
        let stopping = CancellationToken::new();
        let lookup = Self::build_lookup(&config, store.clone(), &stopping)?;
        if let Some(l2) = lookup.l2()
            && let Err(refused) =
                crate::cache::redis_preflight::preflight(l2.connector(), config.redis_timeout).await
        {
            // The bus's subscriber is running already.
            stopping.cancel();
            return Err(refused).context("--redis-url");
        }
        Self::start_revocation(&config, store.clone(), &lookup, &stopping).await;
        let limiter = Limiter::new(
            lookup
                .l2()
                .map(|redis| RedisLimiter::new(redis.clone(), &config.namespace)),
        );
        let counter = Arc::new(UsageCounter::default());
        let usage = Arc::new(UsageWriter::new(
            counter.clone(),
            store.clone(),
            config.usage_flush_interval,
        ));
        let verifier = Verifier::new(lookup.clone(), limiter).with_usage(counter);
        let admin = Arc::new(Admin::new(store.clone(), lookup.clone()));
        let authz = Arc::new(Authz::new(verifier.clone(), settings.ext_authz));
        let leaks = http::leaks::GithubReports::from_file(
            config.leak_report_keys.as_deref(),
            admin.clone(),
        )?;
        let listener = crate::listen::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            metrics,
            state: State {
                store,
                lookup,
                verifier,
                admin,
                stopping,
                authz,
                usage,
            },
            drain_timeout: config.drain_timeout,
            limits: config.limits.clone(),
            cors: config.cors.cors_allowed_origins.clone(),
            tls,
            leaks,
            console: config.console.console.then(|| config.console.clone()),
        })
    }

    /// The tiers and the bus: Redis for both when configured, else
    /// LISTEN/NOTIFY on Postgres, else in-process.
    fn build_lookup(
        config: &Config,
        store: Arc<dyn KeyStore>,
        stopping: &CancellationToken,
    ) -> anyhow::Result<Arc<KeyLookup>> {
        let l1 = config.l1_options();
        let revocation = config.revocation_options();
        let database_url = config.database.url().expose();
        if let Some(redis) = config.redis_options() {
            let l2 = Arc::new(RedisCache::new(redis.clone()).context("--redis-url")?);
            let bus = Arc::new(RedisBus::new(
                l2.connector().clone(),
                &redis.namespace,
                redis.timeout,
            ));
            let lookup = Arc::new(
                KeyLookup::new(store, &l1, Some(l2), bus.clone()).with_revocation(&revocation),
            );
            bus.subscribe(lookup.clone(), stopping.clone());
            return Ok(lookup);
        }
        if database_url.starts_with("postgres") {
            let Some(listen_url) = config.database.session_url() else {
                anyhow::bail!(
                    "--database-pooler transaction: LISTEN/NOTIFY, the invalidation bus without \
                     Redis, cannot work through a transaction pooler. Set --redis-url \
                     (KEYWARD_REDIS_URL) for the bus, or --database-session-url \
                     (KEYWARD_DATABASE_SESSION_URL) to a direct connection"
                );
            };
            let pool = store::writable_pool(listen_url, &config.store_options(), 2, "keyward-bus")
                .context("the invalidation bus's database URL")?;
            let bus = Arc::new(PostgresBus::new(
                pool,
                &config.namespace,
                config.database.database_timeout,
            ));
            let lookup = Arc::new(
                KeyLookup::new(store, &l1, None, bus.clone()).with_revocation(&revocation),
            );
            bus.subscribe(lookup.clone(), stopping.clone());
            return Ok(lookup);
        }
        let bus: Arc<dyn Publisher> = Arc::new(LocalBus);
        Ok(Arc::new(
            KeyLookup::new(store, &l1, None, bus).with_revocation(&revocation),
        ))
    }

    /// Seeds the known invalidations and tails the outbox (see
    /// `cache::outbox`), and retries tombstones Redis did not take. A store
    /// that cannot be read yet is no reason not to start: until the tail
    /// succeeds, cached answers are not trusted.
    async fn start_revocation(
        config: &Config,
        store: Arc<dyn KeyStore>,
        lookup: &Arc<KeyLookup>,
        stopping: &CancellationToken,
    ) {
        let mut tail = OutboxTail::new(
            store,
            lookup.clone(),
            config.revocation_options(),
            config.longest_cached(),
        );
        if let Err(error) = tail.round().await {
            tracing::warn!(%error, "cannot read the invalidation outbox yet; retrying");
        }
        tail.spawn(stopping.clone());
        if let Some(l2) = lookup.l2() {
            l2.retry_tombstones(stopping.clone());
            l2.connector().watch_master(stopping.clone());
        }
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, reports
    /// NOT_SERVING and lets in-flight calls finish for up to the drain
    /// timeout.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<KeyServiceServer<KeyServiceImpl>>()
            .await;
        health.set_serving::<AuthorizationServer>().await;
        health.set_service_status("", ServingStatus::Serving).await;

        let reflection_v1 = reflection::builder().build_v1()?;
        let reflection_v1alpha = reflection::builder().build_v1alpha()?;

        // One implementation behind gRPC, gRPC-Web and Connect.
        let key_service_impl = Arc::new(KeyServiceImpl::new(
            self.state.verifier.clone(),
            self.state.admin.clone(),
        ));
        let key_service = KeyServiceServer::from_arc(key_service_impl.clone())
            .max_decoding_message_size(MAX_REQUEST_BYTES);

        if let Some((listener, handle)) = self.metrics {
            let state = self.state.clone();
            let refresh = move || gauges(&state);
            let stop = self.state.stopping.clone();
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics at /metrics");
            }
            tokio::spawn(async move {
                if let Err(error) = telemetry::metrics::serve(listener, handle, refresh, stop).await
                {
                    tracing::error!(%error, "metrics server failed");
                }
            });
        }
        let ext_authz = AuthorizationServer::new(ExtAuthzService::new(self.state.authz.clone()))
            .max_decoding_message_size(ext_authz::MAX_CHECK_BYTES);
        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_not_serving::<KeyServiceServer<KeyServiceImpl>>()
                .await;
            health.set_not_serving::<AuthorizationServer>().await;
            let _ = draining_tx.send(());
        };
        let tls_mode = match &self.tls {
            None => "off",
            Some(tls) if tls.mutual() => "mutual",
            Some(_) => "on",
        };
        tracing::info!(addr = %self.local_addr, bus = self.state.lookup.bus_kind(), tls = tls_mode, "keyward listening");
        let grpc_services = [
            <tonic_health::pb::health_server::HealthServer<()> as NamedService>::NAME,
            <ServerReflectionServer<()> as NamedService>::NAME,
            <ServerReflectionServerV1Alpha<()> as NamedService>::NAME,
            <KeyServiceServer<KeyServiceImpl> as NamedService>::NAME,
            <AuthorizationServer as NamedService>::NAME,
        ];
        let routes = Routes::new(health_service.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1alpha.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(key_service.clone())
            .add_service(ext_authz)
            .prepare();
        // The HTTP side of the port: each endpoint is mounted here, once.
        let http = http::Router::new()
            .mount(
                http::Mount::Subtree(http::connect::MOUNT),
                http::cors::wrap(
                    http::connect::Connect::new(key_service_impl.clone()),
                    &self.cors,
                ),
            )
            .grpc_web(http::cors::wrap(
                http::grpc_web::GrpcWeb::new(key_service),
                &self.cors,
            ));
        // Forward auth: /authz/envoy/…, /authz/nginx, /authz/forwarded.
        let http = http::authz::mount(http, &self.state.authz);
        let http = match self.leaks {
            Some(leaks) => http.mount(http::Mount::Exact(http::leaks::GITHUB_PATH), leaks),
            None => http,
        };
        // The console calls the same implementation, as the session's admin.
        let http = match &self.console {
            Some(args) => {
                tracing::info!(addr = %self.local_addr, "console at /ui/");
                http.mount(
                    http::Mount::Subtree(http::console::MOUNT),
                    http::console::Console::new(
                        key_service_impl,
                        self.state.verifier.clone(),
                        args,
                        self.tls.is_some(),
                    ),
                )
            }
            None => http,
        };
        let handlers = Handlers {
            grpc: routes,
            grpc_services: grpc_services.as_slice().into(),
            http,
        };
        let transport = match &self.tls {
            None => Transport::Plaintext,
            Some(tls) => {
                tls.spawn_reload(self.state.stopping.clone());
                Transport::Tls(tls.config())
            }
        };
        let limits = self.limits;
        let server = serve::serve(self.listener, transport, handlers, &limits, signal);
        let drain_timeout = self.drain_timeout;
        let deadline = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let stopping = self.state.stopping.clone();
        self.state.usage.spawn(stopping.clone());
        let _stop_background = stopping.drop_guard();
        let served = tokio::select! {
            () = server => Ok::<(), anyhow::Error>(()),
            () = deadline => {
                tracing::warn!(?drain_timeout, "drain timeout: closing remaining connections");
                Ok(())
            }
        };
        // After the drain, so the calls it let finish are counted too; given
        // as long again as the drain to get through.
        match self.state.usage.flush_final(drain_timeout).await {
            Ok(rows) => tracing::debug!(rows, "usage flushed"),
            Err(error) => {
                tracing::error!(%error, "usage since the last flush could not be written")
            }
        }
        served?;
        tracing::info!("keyward stopped");
        Ok(())
    }
}

/// How long the start-up probe waits for its own notification; a session
/// delivers it in one round trip.
const SESSION_PROBE_WAIT: Duration = Duration::from_secs(3);

/// Refuses a URL that would give wrong answers as configured: a database URL
/// not declared as going through a transaction pooler that does not keep a
/// session (named statements would run other clients' SQL, the bus would
/// hear nothing), or a session URL that does not keep one.
async fn check_sessions(
    database: &DatabaseArgs,
    options: &store::StoreOptions,
) -> anyhow::Result<()> {
    let mut urls = Vec::new();
    if database.database_pooler != Pooler::Transaction {
        urls.push(("--database-url", database.url().expose()));
    }
    if let Some(url) = database.session_url_setting() {
        urls.push(("--database-session-url", url.expose()));
    }
    for (flag, url) in urls {
        match store::check_session(url, SESSION_PROBE_WAIT, options).await {
            Ok(true) => {}
            Ok(false) => anyhow::bail!(
                "{flag} does not keep a database session: a LISTEN/NOTIFY probe sent through it \
                 was not delivered within {SESSION_PROBE_WAIT:?}, which is what a \
                 transaction-mode pooler (PgBouncer pool_mode=transaction) does; through it \
                 keyward would run other clients' prepared statements and miss invalidations. \
                 Point {flag} at a direct connection or a session-mode pooler, or declare the \
                 pooler with --database-pooler transaction (KEYWARD_DATABASE_POOLER) and give the \
                 bus Redis (--redis-url) or a direct --database-session-url"
            ),
            // Nothing learnt; a database that is still coming up must not
            // keep the server down (it connects lazily).
            Err(error) => {
                tracing::warn!(flag, %error, "cannot check that the database URL keeps a session; starting without the check")
            }
        }
    }
    Ok(())
}

/// The gauges that are read, not counted: refreshed at each scrape.
fn gauges(state: &State) {
    metrics::gauge!("keyward_l1_entries").set(state.lookup.l1_entries() as f64);
    if let Some(pool) = state.store.pool_stats() {
        metrics::gauge!("keyward_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
        metrics::gauge!("keyward_db_pool_connections", "state" => "in_use")
            .set(f64::from(pool.size - pool.idle.min(pool.size)));
    }
    if let Some(l2) = state.lookup.l2() {
        let (size, idle) = l2.pool_stats();
        metrics::gauge!("keyward_redis_pool_connections", "state" => "idle").set(idle as f64);
        metrics::gauge!("keyward_redis_pool_connections", "state" => "in_use")
            .set(size.saturating_sub(idle) as f64);
    }
}
