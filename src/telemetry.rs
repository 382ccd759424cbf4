//! Logging, set up once per process.
//!
//! JSON lines when stderr is not a terminal (what log stores ingest), human
//! text when it is. The filter is `RUST_LOG` syntax, default `info`. Nothing
//! keyward logs carries a key or a digest: keys are `SecretKey`s and digests
//! `Digest`s, whose `Debug` is redacted.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, pretty otherwise.
    Auto,
    Json,
    Pretty,
}

/// Installs the global subscriber; later calls (e.g. from tests) are no-ops.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // A subscriber already set (tests start many servers) is fine.
    let _ = result;
}
