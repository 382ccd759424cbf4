//! One span and one counter per admin action (`keyward.admin.issue`, …),
//! with the actor, the target key and the outcome.

use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{SPAN_TARGET, otel};

pub struct AdminObserved {
    action: &'static str,
    span: Span,
}

impl AdminObserved {
    /// `method` is the gRPC method name, e.g. `Issue`.
    pub fn start(
        action: &'static str,
        method: &'static str,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Self {
        let span = tracing::info_span!(
            target: SPAN_TARGET, "keyward.admin",
            otel.name = format!("keyward.admin.{action}"),
            otel.kind = "server", rpc.system = "grpc", rpc.service = "keyward.v1.KeyService", rpc.method = method,
            rpc.grpc.status_code = Empty, otel.status_code = Empty,
            keyward.action = action, keyward.actor = Empty, keyward.key_id = Empty, keyward.project = Empty,
        );
        if otel::enabled()
            && !span.is_disabled()
            && let Some(parent) = otel::from_metadata(metadata)
        {
            let _ = span.set_parent(parent);
        }
        Self { action, span }
    }

    pub fn span(&self) -> &Span {
        &self.span
    }

    pub fn actor(&self, key_id: Option<&str>) {
        if let Some(id) = key_id {
            self.span.record("keyward.actor", id);
        }
    }

    pub fn target(&self, key_id: &str, project: &str) {
        self.span.record("keyward.key_id", key_id);
        self.span.record("keyward.project", project);
    }

    pub fn finish<T>(self, result: &Result<T, tonic::Status>) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.span.record("rpc.grpc.status_code", code as i32);
        if result.is_err() {
            self.span.record("otel.status_code", "ERROR");
        }
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("keyward_admin_actions_total", "action" => self.action, "outcome" => outcome).increment(1);
    }
}
