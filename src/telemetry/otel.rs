//! OpenTelemetry trace export (OTLP over gRPC) and W3C trace-context
//! propagation.
//!
//! Export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. The SDK honours the standard
//! variables: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*` for batching
//! and `OTEL_EXPORTER_OTLP_*` for the exporter.

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider},
};
use tonic::metadata::MetadataMap;

use super::otlp_runtime::OtlpRuntime;
use crate::authz::Fields;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// The tracer decision spans are built with, set with [`set_enabled`].
static DECISION_TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Whether spans are exported; when not, nothing extracts trace context.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The tracer of decision spans while export is on.
pub(super) fn decision_tracer() -> Option<&'static SdkTracer> {
    if enabled() {
        DECISION_TRACER.get()
    } else {
        None
    }
}

pub(super) fn set_enabled(exporter: &Exporter) {
    if DECISION_TRACER.set(exporter.tracer()).is_ok() {
        ENABLED.store(true, Ordering::Relaxed);
    }
}

pub struct Exporter {
    provider: SdkTracerProvider,
    runtime: OtlpRuntime,
}

impl Exporter {
    /// An exporter configured from the environment, or `None` when no OTLP
    /// endpoint is set (or it cannot be built, which is logged).
    pub fn from_env() -> Option<Self> {
        let configured = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()));
        if !configured {
            return None;
        }
        let (runtime, exporter) = match OtlpRuntime::start() {
            Ok(started) => started,
            Err(error) => {
                eprintln!("keyward: OTLP trace export disabled: {error}");
                return None;
            }
        };
        let resource = Resource::builder()
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        // Resource::builder() reads OTEL_SERVICE_NAME and
        // OTEL_RESOURCE_ATTRIBUTES; without a name, call ourselves keyward.
        let resource = if std::env::var_os("OTEL_SERVICE_NAME").is_none()
            && !std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="))
        {
            Resource::builder()
                .with_service_name("keyward")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build()
        } else {
            resource
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Some(Self { provider, runtime })
    }

    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("keyward")
    }

    /// Exports what is buffered and stops.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("keyward: flushing spans failed: {error}");
        }
        // The last export has returned: the channel's tasks may stop.
        self.runtime.stop();
    }
}

/// The caller's trace context from gRPC metadata (`traceparent`,
/// `tracestate`).
pub fn from_metadata(metadata: &MetadataMap) -> Option<Context> {
    struct Metadata<'a>(&'a MetadataMap);
    impl Extractor for Metadata<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            Vec::new()
        }
    }
    extract(&Metadata(metadata))
}

/// The caller's trace context from HTTP headers (ext_authz passes the
/// original request's headers, lower-cased), read through [`Fields`].
pub fn from_headers<H: Fields + ?Sized>(headers: &H) -> Option<Context> {
    struct Headers<'a, H: ?Sized>(&'a H);
    impl<H: Fields + ?Sized> Extractor for Headers<'_, H> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.field(key)
        }
        fn keys(&self) -> Vec<&str> {
            Vec::new()
        }
    }
    extract(&Headers(headers))
}

/// The caller's trace context from a forward-auth sub-request's headers,
/// which gateways pass on from the original request.
pub fn from_http_headers(headers: &http::HeaderMap) -> Option<Context> {
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            Vec::new()
        }
    }
    extract(&Headers(headers))
}

fn extract(carrier: &dyn Extractor) -> Option<Context> {
    carrier.get("traceparent")?;
    Some(TraceContextPropagator::new().extract(carrier))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn traceparent_is_read_from_metadata_and_headers() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut metadata = MetadataMap::new();
        metadata.insert("traceparent", traceparent.parse().unwrap());
        let cx = from_metadata(&metadata).unwrap();
        let span = cx.span();
        let parent = span.span_context();
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");

        let headers = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
        let cx = from_headers(&headers).unwrap();
        assert_eq!(cx.span().span_context().trace_id(), parent.trace_id());
        assert!(from_headers(&HashMap::new()).is_none());
    }
}
