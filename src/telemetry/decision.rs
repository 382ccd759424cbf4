//! One decision, observed once: a span (`keyward.verify` / `keyward.check`),
//! the decision metrics, and a debug log event with the same fields, so "all
//! decisions for key X" is one filter in a trace or log store.

use std::time::Instant;

use opentelemetry::Context;

use super::{
    DECISION_TARGET,
    decision_span::{DecisionSpan, Fields, Kind},
    metrics::Rpc,
};
use crate::{
    authz::{Answer, Why},
    cache::{LookupError, Tier},
    decision::Reason,
    record::KeyRecord,
    verify::Verdict,
};

/// A decision being made: its span (while export is on) and its start.
pub struct Observed {
    rpc: Rpc,
    span: Option<DecisionSpan>,
    started: Instant,
}

impl Observed {
    /// Starts the decision span, child of the caller's trace context when
    /// span export is on (`parent` is only evaluated then).
    pub fn start(rpc: Rpc, parent: impl FnOnce() -> Option<Context>) -> Self {
        let kind = match rpc {
            Rpc::Verify => Kind::Verify,
            Rpc::Check => Kind::Check,
        };
        Self::with_span(rpc, DecisionSpan::start(kind, parent))
    }

    /// Starts the `keyward.check` span of a forward-auth sub-request: a
    /// Check decision, over HTTP, with the endpoint's mode.
    pub fn start_forward_auth(
        mode: &'static str,
        parent: impl FnOnce() -> Option<Context>,
    ) -> Self {
        Self::with_span(
            Rpc::Check,
            DecisionSpan::start(Kind::ForwardAuth(mode), parent),
        )
    }

    fn with_span(rpc: Rpc, span: Option<DecisionSpan>) -> Self {
        Self {
            rpc,
            span,
            started: Instant::now(),
        }
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
        let project = outcome.record.map(|r| &r.project);
        let cache = outcome.tier.map_or("none", |t| t.as_str());
        if let Some(span) = self.span {
            span.finish(Fields {
                decision: outcome.decision,
                reason: outcome.reason_name,
                cache,
                required_scopes: required.to_string(),
                key_id,
                project,
                observe: outcome.observe,
            });
        }
        tracing::debug!(
            target: DECISION_TARGET,
            rpc = self.rpc.as_str(),
            decision = outcome.decision,
            reason = outcome.reason_name,
            key_id,
            project = project.map(|p| &**p),
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
