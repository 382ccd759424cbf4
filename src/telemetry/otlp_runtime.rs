//! The OTLP exporter's own thread and Tokio runtime.
//!
//! tonic's channel spawns its connection and request-buffer tasks on the
//! runtime it is built in, and the protobuf encoding of every batch runs in
//! those tasks. Built in the server's runtime, that work lands on the
//! request threads; built here, on a current-thread runtime of its own, it
//! stays on one thread that answers no request. The batch span processor
//! still drives each export from its own thread; it only awaits the reply.

use std::thread::JoinHandle;

use opentelemetry_otlp::{ExporterBuildError, SpanExporter};
use tokio::sync::oneshot;

/// The runtime thread; it runs until [`OtlpRuntime::stop`].
pub(super) struct OtlpRuntime {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error("could not start the export thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error(transparent)]
    Exporter(#[from] ExporterBuildError),
    #[error("the export thread stopped while starting")]
    Stopped,
}

impl OtlpRuntime {
    /// Starts the thread and builds, inside its runtime, the OTLP/gRPC span
    /// exporter from the `OTEL_EXPORTER_OTLP_*` variables.
    pub(super) fn start() -> Result<(Self, SpanExporter), StartError> {
        let (built_tx, built_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("keyward-otlp".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = built_tx.send(Err(StartError::Thread(error)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let built = SpanExporter::builder().with_tonic().build();
                    let ok = built.is_ok();
                    let _ = built_tx.send(built.map_err(StartError::from));
                    if ok {
                        // Serve the channel's tasks until told to stop.
                        let _ = stopped.await;
                    }
                });
            })?;
        let exporter = built_rx.recv().map_err(|_| StartError::Stopped)??;
        Ok((Self { stop, thread }, exporter))
    }

    /// Stops the runtime; call after the last export has returned.
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
