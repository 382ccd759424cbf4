//! One decision, observed once: a span (`keyward.verify` / `keyward.check`),
//! the decision metrics, and a debug log event with the same fields, so "all
//! decisions for key X" is one filter in a trace or log store.

use std::time::Instant;

use opentelemetry::Context;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{DECISION_TARGET, SPAN_TARGET, metrics::Rpc, otel};
use crate::{
    authz::{Answer, Why},
    cache::{LookupError, Tier},
    decision::Reason,
    record::KeyRecord,
    verify::Verdict,
};

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
        Self::with_span(rpc, span, parent)
    }

    /// Starts the `keyward.check` span of a forward-auth sub-request: a
    /// Check decision, over HTTP, with the endpoint's mode.
    pub fn start_forward_auth(
        mode: &'static str,
        parent: impl FnOnce() -> Option<Context>,
    ) -> Self {
        let span = tracing::info_span!(
            target: SPAN_TARGET, "keyward.check",
            otel.kind = "server", keyward.http_mode = mode, otel.status_code = Empty,
            keyward.decision = Empty, keyward.reason = Empty, keyward.key_id = Empty,
            keyward.project = Empty, keyward.cache = Empty, keyward.required_scopes = Empty,
            keyward.observe = Empty,
        );
        Self::with_span(Rpc::Check, span, parent)
    }

    fn with_span(rpc: Rpc, span: Span, parent: impl FnOnce() -> Option<Context>) -> Self {
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

    /// Records a Verify outcome.
    pub fn finish<S: AsRef<str>>(
        self,
        outcome: &Result<Verdict, LookupError>,
        required: &[S],
        observe: bool,
    ) {
        let (reason, tier) = match outcome {
            Ok(verdict) => (Some(verdict.reason), verdict.tier),
            Err(_) => (None, None),
        };
        let record = outcome.as_ref().ok().and_then(|v| v.record.as_deref());
        let decision = match reason {
            Some(r) if r.allowed() => "allow",
            Some(_) => "deny",
            None => "error",
        };
        let outcome = Outcome {
            decision,
            reason,
            reason_name: reason.map_or("unavailable", |r| r.as_str()),
            record,
            tier,
            observe,
        };
        self.record(&outcome, &Joined(required));
    }

    /// Records an ext_authz Check outcome: `None` when keyward could not
    /// decide (the call fails, so Envoy fails closed).
    pub fn finish_check(self, answer: Option<&Answer<'_>>) {
        let Some(answer) = answer else {
            let outcome = Outcome {
                decision: "error",
                reason: None,
                reason_name: "unavailable",
                record: None,
                tier: None,
                observe: false,
            };
            return self.record(&outcome, &"");
        };
        let reason = match answer.why {
            Why::Key(reason) => Some(reason),
            Why::PathNotNormal
            | Why::AmbiguousCredential
            | Why::MethodOverride
            | Why::NoRoute
            | Why::Unavailable => None,
        };
        let outcome = Outcome {
            decision: answer.decision.as_str(),
            reason,
            reason_name: answer.why.as_str(),
            record: answer.record.as_deref(),
            tier: answer.tier,
            observe: answer.observe,
        };
        let required = answer.required.joined().unwrap_or_default();
        self.record(&outcome, &required);
    }

    fn record(self, outcome: &Outcome<'_>, required: &dyn std::fmt::Display) {
        let elapsed = self.started.elapsed();
        match (outcome.reason, outcome.decision) {
            (Some(reason), "allow" | "deny") => {
                super::metrics::decision(self.rpc, Some(reason), outcome.tier, elapsed)
            }
            (None, "error") => super::metrics::decision(self.rpc, None, outcome.tier, elapsed),
            // Observe mode's "would deny", or a refusal before any key was
            // looked at (a path not in normal form): rare, counted by name.
            (_, decision) => metrics::counter!(
                "keyward_decisions_total",
                "rpc" => self.rpc.as_str(),
                "decision" => decision.to_owned(),
                "reason" => outcome.reason_name
            )
            .increment(1),
        }
        let key_id = outcome.record.map(|r| r.id.as_str());
        let project = outcome.record.map(|r| &*r.project);
        let cache = outcome.tier.map_or("none", |t| t.as_str());
        let span = &self.span;
        if !span.is_disabled() {
            span.record("keyward.decision", outcome.decision);
            span.record("keyward.reason", outcome.reason_name);
            span.record("keyward.cache", cache);
            span.record("keyward.required_scopes", required.to_string().as_str());
            if let Some(id) = key_id {
                span.record("keyward.key_id", id);
            }
            if let Some(project) = project {
                span.record("keyward.project", project);
            }
            if self.rpc == Rpc::Check {
                span.record("keyward.observe", outcome.observe);
            }
            // Only "could not decide" is a gRPC error.
            let failed = outcome.decision == "error";
            let code = if failed {
                tonic::Code::Unavailable as i32
            } else {
                0
            };
            span.record("rpc.grpc.status_code", code);
            if failed {
                span.record("otel.status_code", "ERROR");
            }
        }
        tracing::debug!(
            target: DECISION_TARGET,
            rpc = self.rpc.as_str(),
            decision = outcome.decision,
            reason = outcome.reason_name,
            key_id,
            project,
            cache,
            observe = outcome.observe,
            required_scopes = %required,
            elapsed_us = elapsed.as_micros() as u64,
            "decision"
        );
    }
}

/// One decision, whichever RPC made it.
struct Outcome<'a> {
    decision: &'static str,
    reason: Option<Reason>,
    reason_name: &'static str,
    record: Option<&'a KeyRecord>,
    tier: Option<Tier>,
    observe: bool,
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
