//! Telemetry, set up once per process: logs, OpenTelemetry traces and
//! Prometheus metrics.
//!
//! - Logs are JSON lines when stderr is not a terminal (what log stores
//!   ingest), human text when it is; the filter is `RUST_LOG` syntax.
//! - Traces: one span per decision (`keyward.verify`, `keyward.check`) and
//!   per admin action, exported over OTLP/gRPC when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set; when it is not, those spans are
//!   disabled at their call sites and cost next to nothing. Decision spans,
//!   one per request, go straight to the OpenTelemetry SDK
//!   (`decision_span.rs`); admin spans through the tracing bridge.
//! - Metrics: see [`metrics`].
//!
//! Nothing here carries a key or a digest: keys are `SecretKey`s and digests
//! `Digest`s, whose `Debug` is redacted, and no span, metric or log field is
//! ever given one.

pub mod admin;
pub mod decision;
mod decision_span;
pub mod metrics;
pub mod otel;
mod otlp_runtime;

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, Layer, filter::Targets, fmt, prelude::*};

/// Target of the spans that go to OpenTelemetry (and only there).
pub const SPAN_TARGET: &str = "keyward::trace";
/// Target of the per-decision log events (debug level).
pub const DECISION_TARGET: &str = "keyward::decision";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, pretty otherwise.
    Auto,
    Json,
    Pretty,
}

/// Flushes traces when dropped or shut down.
#[must_use = "dropping the guard flushes and stops trace export"]
pub struct Telemetry {
    otel: Option<otel::Exporter>,
}

impl Telemetry {
    /// Sends the spans still buffered; call before the process exits.
    pub fn shutdown(mut self) {
        if let Some(exporter) = self.otel.take() {
            exporter.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(exporter) = self.otel.take() {
            exporter.shutdown();
        }
    }
}

/// Installs the global subscriber: logs as `format` filtered by `filter`
/// (else `RUST_LOG`, else `info`), and trace export when the standard
/// `OTEL_*` variables ask for it. Must run inside a Tokio runtime. A second
/// call (tests start many servers) installs nothing.
pub fn init(format: LogFormat, filter: Option<&str>) -> Telemetry {
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
        // Decision spans are for OpenTelemetry: formatting them into every
        // log line would cost the hot path.
        .add_directive(
            format!("{SPAN_TARGET}=off")
                .parse()
                .expect("static directive"),
        );
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let logs = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    let exporter = otel::Exporter::from_env();
    let traces = exporter.as_ref().map(|e| {
        tracing_opentelemetry::layer()
            .with_tracer(e.tracer())
            .with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if installed && let Some(exporter) = &exporter {
        otel::set_enabled(exporter);
    }
    Telemetry {
        otel: exporter.filter(|_| installed),
    }
}
