//! Builds and runs the server. Tests use the same path as `keyward serve`:
//! `Application::build(config)` then `run_until_stopped`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::ServingStatus;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio_util::sync::CancellationToken;

use crate::{
    admin::Admin,
    authz::Authz,
    cache::{
        KeyLookup, LocalBus, Publisher, RedisCache,
        bus::{PostgresBus, RedisBus},
    },
    config::Config,
    grpc::{
        MAX_REQUEST_BYTES,
        ext_authz::{self, ExtAuthzService},
        key_service::KeyServiceImpl,
    },
    limit::{Limiter, RedisLimiter},
    proto::{self, v1::key_service_server::KeyServiceServer},
    serve::{self, Limits, Transport},
    store::{self, KeyStore, TimeoutStore},
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
    /// `None`: plaintext.
    tls: Option<ServerTls>,
}

impl Application {
    /// Opens the store named by the config, migrates it unless told not to,
    /// and binds the listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // A bad config file is reported before anything is opened.
        config.file_settings()?;
        let store = store::connect(
            config.database.database_url.expose(),
            &config.database.store_options(),
        )
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
        let listener = TcpListener::bind(config.listen)
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
            tls,
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
        let database_url = config.database.database_url.expose();
        if let Some(redis) = config.redis_options() {
            let l2 = Arc::new(RedisCache::new(redis.clone()).map_err(anyhow::Error::msg)?);
            let bus = Arc::new(
                RedisBus::new(&redis.url, &redis.namespace, redis.timeout)
                    .map_err(anyhow::Error::msg)?,
            );
            let lookup = Arc::new(KeyLookup::new(store, &l1, Some(l2), bus.clone()));
            bus.subscribe(lookup.clone(), stopping.clone());
            return Ok(lookup);
        }
        if database_url.starts_with("postgres") {
            let bus = Arc::new(
                PostgresBus::new(
                    database_url,
                    &config.namespace,
                    config.database.database_timeout,
                )
                .map_err(anyhow::Error::msg)?,
            );
            let lookup = Arc::new(KeyLookup::new(store, &l1, None, bus.clone()));
            bus.subscribe(lookup.clone(), stopping.clone());
            return Ok(lookup);
        }
        let bus: Arc<dyn Publisher> = Arc::new(LocalBus);
        Ok(Arc::new(KeyLookup::new(store, &l1, None, bus)))
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
        health
            .set_serving::<AuthorizationServer<ExtAuthzService>>()
            .await;
        health.set_service_status("", ServingStatus::Serving).await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let key_service = KeyServiceServer::new(KeyServiceImpl::new(
            self.state.verifier.clone(),
            self.state.admin.clone(),
        ))
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
            health
                .set_not_serving::<AuthorizationServer<ExtAuthzService>>()
                .await;
            let _ = draining_tx.send(());
        };
        let tls_mode = match &self.tls {
            None => "off",
            Some(tls) if tls.mutual() => "mutual",
            Some(_) => "on",
        };
        tracing::info!(addr = %self.local_addr, bus = self.state.lookup.bus_kind(), tls = tls_mode, "keyward listening");
        let routes = Routes::new(health_service.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1alpha.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(key_service)
            .add_service(ext_authz)
            .prepare();
        let transport = match &self.tls {
            None => Transport::Plaintext,
            Some(tls) => {
                tls.spawn_reload(self.state.stopping.clone());
                Transport::Tls(tls.config())
            }
        };
        let limits = self.limits;
        let server = serve::serve(self.listener, transport, routes, &limits, signal);
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
        // After the drain, so the calls it let finish are counted too.
        match self.state.usage.flush().await {
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
