//! One decision, observed once: a span (`keyward.verify` / `keyward.check`),
//! the decision metrics, and a debug log event with the same fields, so "all
//! decisions for key X" is one filter in a trace or log store.

use std::time::Instant;

use opentelemetry::Context;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{DECISION_TARGET, SPAN_TARGET, metrics::Rpc, otel};
use crate::{cache::LookupError, verify::Verdict};

/// A decision being made: its span and its start.
pub struct Observed {
    rpc: Rpc,
    span: Span,
    started: Instant,
}

impl Observed {
    /// Starts the decision span, child of the caller's trace context when
    /// span export is on (`parent` is only evaluated then).
    pub fn start(rpc: Rpc, parent: impl FnOnce() -> Option<Context>) -> Self {
        let span = match rpc {
            Rpc::Verify => tracing::info_span!(
                target: SPAN_TARGET, "keyward.verify",
                otel.kind = "server", rpc.system = "grpc", rpc.service = "keyward.v1.KeyService", rpc.method = "Verify",
                rpc.grpc.status_code = Empty, otel.status_code = Empty,
                keyward.decision = Empty, keyward.reason = Empty, keyward.key_id = Empty,
                keyward.project = Empty, keyward.cache = Empty, keyward.required_scopes = Empty,
            ),
            Rpc::Check => tracing::info_span!(
                target: SPAN_TARGET, "keyward.check",
                otel.kind = "server", rpc.system = "grpc", rpc.service = "envoy.service.auth.v3.Authorization", rpc.method = "Check",
                rpc.grpc.status_code = Empty, otel.status_code = Empty,
                keyward.decision = Empty, keyward.reason = Empty, keyward.key_id = Empty,
                keyward.project = Empty, keyward.cache = Empty, keyward.required_scopes = Empty,
                keyward.observe = Empty,
            ),
        };
        if otel::enabled()
            && !span.is_disabled()
            && let Some(parent) = parent()
        {
            let _ = span.set_parent(parent);
        }
        Self {
            rpc,
            span,
            started: Instant::now(),
        }
    }

    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Records the outcome; `observe` marks an ext_authz decision that was
    /// only recorded, not enforced.
    pub fn finish<S: AsRef<str>>(
        self,
        outcome: &Result<Verdict, LookupError>,
        required: &[S],
        observe: bool,
    ) {
        let elapsed = self.started.elapsed();
        let (reason, tier) = match outcome {
            Ok(verdict) => (Some(verdict.reason), verdict.tier),
            Err(_) => (None, None),
        };
        super::metrics::decision(self.rpc, reason, tier, elapsed);

        let decision = match reason {
            Some(r) if r.allowed() => "allow",
            Some(_) => "deny",
            None => "error",
        };
        let reason_name = reason.map_or("unavailable", |r| r.as_str());
        let record = outcome.as_ref().ok().and_then(|v| v.record.as_deref());
        let key_id = record.map(|r| r.id.as_str());
        let project = record.map(|r| &*r.project);
        let cache = tier.map_or("none", |t| t.as_str());
        let span = &self.span;
        if !span.is_disabled() {
            let scopes = join(required);
            span.record("keyward.decision", decision);
            span.record("keyward.reason", reason_name);
            span.record("keyward.cache", cache);
            span.record("keyward.required_scopes", scopes.as_str());
            if let Some(id) = key_id {
                span.record("keyward.key_id", id);
            }
            if let Some(project) = project {
                span.record("keyward.project", project);
            }
            if self.rpc == Rpc::Check {
                span.record("keyward.observe", observe);
            }
            // Unavailable is the only decision that is a gRPC error.
            let code = if reason.is_some() {
                0
            } else {
                tonic::Code::Unavailable as i32
            };
            span.record("rpc.grpc.status_code", code);
            if reason.is_none() {
                span.record("otel.status_code", "ERROR");
            }
        }
        tracing::debug!(
            target: DECISION_TARGET,
            rpc = self.rpc.as_str(),
            decision,
            reason = reason_name,
            key_id,
            project,
            cache,
            observe,
            required_scopes = %Joined(required),
            elapsed_us = elapsed.as_micros() as u64,
            "decision"
        );
    }
}

fn join<S: AsRef<str>>(scopes: &[S]) -> String {
    Joined(scopes).to_string()
}

/// Scopes as `a,b,c`, formatted only if a log line is actually written.
struct Joined<'a, S>(&'a [S]);

impl<S: AsRef<str>> std::fmt::Display for Joined<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_ref())?;
        }
        Ok(())
    }
}
