//! Serving renewed certificates without a restart.
//!
//! Kubernetes updates a mounted Secret by writing the new files to a fresh
//! directory and swapping a `..data` symlink, so modification times and
//! inodes of the paths keyward was given are not a reliable signal. Instead
//! the files are simply re-read every interval (they are a few KiB) and
//! their bytes compared with those being served. New bytes that load replace
//! the whole rustls `ServerConfig` (certificate, key and client CA together);
//! established connections keep the configuration they were accepted with.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use super::contents::{Contents, TlsFiles};

/// The configuration new connections are accepted with.
#[derive(Debug)]
pub struct ReloadingConfig {
    current: RwLock<Served>,
}

#[derive(Debug)]
struct Served {
    config: Arc<ServerConfig>,
    digest: [u8; 32],
}

impl ReloadingConfig {
    pub(super) fn new(config: Arc<ServerConfig>, digest: [u8; 32]) -> Self {
        Self {
            current: RwLock::new(Served { config, digest }),
        }
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.read(|served| served.config.clone())
    }

    fn digest(&self) -> [u8; 32] {
        self.read(|served| served.digest)
    }

    fn read<T>(&self, f: impl FnOnce(&Served) -> T) -> T {
        f(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, config: Arc<ServerConfig>, digest: [u8; 32]) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Served { config, digest };
    }

    /// Re-reads the files once: swaps in their configuration when they
    /// changed and load. `Ok(false)` means unchanged.
    pub(super) fn reload(&self, files: &TlsFiles) -> anyhow::Result<bool> {
        let contents = Contents::read(files)?;
        let digest = contents.digest();
        if digest == self.digest() {
            return Ok(false);
        }
        let config = contents.server_config(files)?;
        self.replace(config, digest);
        Ok(true)
    }
}

/// Re-reads `files` every `interval` until `stopping`. A failure is logged
/// once (until the files change again) and the current configuration stays.
pub(super) async fn run(
    config: Arc<ReloadingConfig>,
    files: TlsFiles,
    interval: Duration,
    stopping: CancellationToken,
) {
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let (task_config, task_files) = (config.clone(), files.clone());
        // File reads block: keep them off the runtime's workers.
        let outcome = tokio::task::spawn_blocking(move || task_config.reload(&task_files)).await;
        match outcome {
            Ok(Ok(false)) => last_error = None,
            Ok(Ok(true)) => {
                last_error = None;
                metrics::counter!("keyward_tls_reloads_total", "outcome" => "ok").increment(1);
                tracing::info!(cert = %files.cert.display(), "TLS files changed: new connections use the new certificate");
            }
            Ok(Err(error)) => {
                let error = format!("{error:#}");
                if last_error.as_ref() != Some(&error) {
                    metrics::counter!("keyward_tls_reloads_total", "outcome" => "error")
                        .increment(1);
                    tracing::warn!(%error, "cannot reload the TLS files: still serving the previous certificate");
                    last_error = Some(error);
                }
            }
            Err(error) => tracing::warn!(%error, "TLS reload task failed"),
        }
    }
}
