//! Builds and runs the server. Tests use the same path as `keyward serve`:
//! `Application::build(config)` then `run_until_stopped`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;

use crate::{
    admin::Admin,
    authz::Authz,
    cache::KeyLookup,
    config::Config,
    grpc::{
        MAX_REQUEST_BYTES,
        ext_authz::{self, ExtAuthzService},
        key_service::KeyServiceImpl,
    },
    proto::{self, v1::key_service_server::KeyServiceServer},
    store::{self, KeyStore},
    verify::Verifier,
};

/// The parts of a running server, shared by its services.
#[derive(Clone)]
pub struct State {
    pub store: Arc<dyn KeyStore>,
    pub lookup: Arc<KeyLookup>,
    pub verifier: Verifier,
    pub admin: Arc<Admin>,
    pub authz: Arc<Authz>,
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: State,
    drain_timeout: Duration,
}

impl Application {
    /// Opens the store named by the config, migrates it unless told not to,
    /// and binds the listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // A bad config file is reported before anything is opened.
        config.file_settings()?;
        let store = store::connect(
            &config.database.database_url,
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
        if !config.no_migrate {
            store
                .migrate()
                .await
                .context("cannot migrate the database")?;
        }
        let lookup = Arc::new(KeyLookup::new(store.clone(), &config.l1_options()));
        let verifier = Verifier::new(lookup.clone());
        let admin = Arc::new(Admin::new(store.clone(), lookup.clone()));
        let authz = Arc::new(Authz::new(verifier.clone(), settings.ext_authz));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            state: State {
                store,
                lookup,
                verifier,
                admin,
                authz,
            },
            drain_timeout: config.drain_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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

        let ext_authz = AuthorizationServer::new(ExtAuthzService::new(self.state.authz.clone()))
            .max_decoding_message_size(ext_authz::MAX_CHECK_BYTES);

        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
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
        tracing::info!(addr = %self.local_addr, "keyward listening");
        let server = Server::builder()
            .add_service(health_service.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(reflection_v1alpha.max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(key_service)
            .add_service(ext_authz)
            .serve_with_incoming_shutdown(incoming, signal);
        let drain_timeout = self.drain_timeout;
        let deadline = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result.context("gRPC server failed")?,
            () = deadline => tracing::warn!(?drain_timeout, "drain timeout: closing remaining connections"),
        }
        tracing::info!("keyward stopped");
        Ok(())
    }
}
