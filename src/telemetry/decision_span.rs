//! A decision span built straight through the OpenTelemetry SDK, without
//! the tracing bridge: a tracing span costs a registry slot, type-keyed
//! extensions and a string copy per recorded field before the SDK even sees
//! it, and that was most of a span's cost on the request thread.
//!
//! Nothing is built until the decision is known: start keeps the parent
//! context, the start time and the thread, finish makes the span in one
//! go. The SDK still does the rest (sampler, ids, batching, the resource,
//! the exporter), so every `OTEL_*` variable keeps its standard meaning.
//! The attributes are those the bridge gave these spans, in the same order
//! and of the same types, including its `code.*`, `thread.*` and
//! `busy_ns`/`idle_ns` (the span was never entered, so both are 0).

use std::{sync::Arc, time::SystemTime};

use opentelemetry::{
    Context, KeyValue, StringValue, Value,
    trace::{Span as _, SpanKind, Status, Tracer as _},
};

use super::otel;

/// Which decision the span is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Verify,
    Check,
    /// A forward-auth sub-request, with its endpoint's mode.
    ForwardAuth(&'static str),
}

/// What the decision span records once the decision is made.
pub(super) struct Fields<'a> {
    pub decision: &'static str,
    pub reason: &'static str,
    pub cache: &'static str,
    pub required_scopes: String,
    pub key_id: Option<&'a str>,
    pub project: Option<&'a Arc<str>>,
    pub observe: bool,
}

/// A decision span started while export is on.
pub(super) struct DecisionSpan {
    kind: Kind,
    parent: Context,
    start: SystemTime,
    thread: Thread,
}

impl DecisionSpan {
    /// `None` when span export is off (then `parent` is not evaluated).
    pub(super) fn start(kind: Kind, parent: impl FnOnce() -> Option<Context>) -> Option<Self> {
        otel::decision_tracer()?;
        Some(Self {
            kind,
            parent: parent().unwrap_or_else(Context::current),
            start: opentelemetry::time::now(),
            thread: Thread::current(),
        })
    }

    /// Builds the span and hands it to the SDK's span processor.
    pub(super) fn finish(self, fields: Fields<'_>) {
        let Some(tracer) = otel::decision_tracer() else {
            return;
        };
        let name = match self.kind {
            Kind::Verify => "keyward.verify",
            Kind::Check | Kind::ForwardAuth(_) => "keyward.check",
        };
        // Only "could not decide" is an error.
        let failed = fields.decision == "error";
        let builder = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(self.start)
            .with_attributes(attributes(self.kind, &self.thread, fields));
        let mut span = tracer.build_with_context(builder, &self.parent);
        if failed {
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

/// The span's attributes, in the bridge's order: location, thread, the
/// span's static fields, then the recorded ones in the order decision.rs
/// recorded them, then the bridge's timings.
fn attributes(kind: Kind, thread: &Thread, fields: Fields<'_>) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(20);
    attributes.extend([
        KeyValue::new("code.file.path", file!()),
        KeyValue::new("code.module.name", module_path!()),
        KeyValue::new("code.line.number", i64::from(line!())),
        KeyValue::new("thread.id", thread.id),
    ]);
    if let Some(name) = &thread.name {
        attributes.push(KeyValue::new("thread.name", name.clone()));
    }
    match kind {
        Kind::Verify => attributes.extend([
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", "keyward.v1.KeyService"),
            KeyValue::new("rpc.method", "Verify"),
        ]),
        Kind::Check => attributes.extend([
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", "envoy.service.auth.v3.Authorization"),
            KeyValue::new("rpc.method", "Check"),
        ]),
        Kind::ForwardAuth(mode) => attributes.push(KeyValue::new("keyward.http_mode", mode)),
    }
    attributes.extend([
        KeyValue::new("keyward.decision", fields.decision),
        KeyValue::new("keyward.reason", fields.reason),
        KeyValue::new("keyward.cache", fields.cache),
        KeyValue::new("keyward.required_scopes", fields.required_scopes),
    ]);
    if let Some(id) = fields.key_id {
        attributes.push(KeyValue::new("keyward.key_id", id.to_owned()));
    }
    if let Some(project) = fields.project {
        attributes.push(KeyValue::new(
            "keyward.project",
            Value::String(StringValue::from(Arc::clone(project))),
        ));
    }
    if kind != Kind::Verify {
        attributes.push(KeyValue::new("keyward.observe", fields.observe));
    }
    // A forward-auth span is no gRPC call: it has no gRPC status.
    if !matches!(kind, Kind::ForwardAuth(_)) {
        let code = if fields.decision == "error" {
            tonic::Code::Unavailable as i64
        } else {
            0
        };
        attributes.push(KeyValue::new("rpc.grpc.status_code", code));
    }
    attributes.extend([
        KeyValue::new("busy_ns", 0_i64),
        KeyValue::new("idle_ns", 0_i64),
    ]);
    attributes
}

/// The thread a span started on, as the bridge reported it.
#[derive(Clone)]
struct Thread {
    id: i64,
    name: Option<StringValue>,
}

thread_local! {
    // Read once per thread: the name would otherwise be copied per span.
    static THREAD: Thread = {
        let current = std::thread::current();
        Thread {
            id: thread_id_integer(current.id()),
            name: current.name().map(|n| StringValue::from(Arc::<str>::from(n))),
        }
    };
}

impl Thread {
    fn current() -> Self {
        THREAD.with(Thread::clone)
    }
}

/// `ThreadId`'s number, which std exposes only through `Debug`
/// (`ThreadId(7)`): what the bridge reports as `thread.id`.
fn thread_id_integer(id: std::thread::ThreadId) -> i64 {
    format!("{id:?}")
        .trim_start_matches("ThreadId(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Key;

    fn keys(attributes: &[KeyValue]) -> Vec<&str> {
        attributes.iter().map(|kv| kv.key.as_str()).collect()
    }

    fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attributes
            .iter()
            .find(|kv| kv.key == Key::from(key.to_owned()))
            .map(|kv| &kv.value)
    }

    fn fields<'a>(decision: &'static str, project: Option<&'a Arc<str>>) -> Fields<'a> {
        Fields {
            decision,
            reason: if decision == "error" {
                "unavailable"
            } else {
                "ok"
            },
            cache: "l1",
            required_scopes: "orders:read,orders:write".into(),
            key_id: project.map(|_| "key_01"),
            project,
            observe: true,
        }
    }

    fn thread() -> Thread {
        Thread {
            id: 7,
            name: Some("tokio-runtime-worker".into()),
        }
    }

    #[test]
    fn verify_has_the_bridge_attributes_in_its_order() {
        let project: Arc<str> = "acme".into();
        let attributes = attributes(Kind::Verify, &thread(), fields("allow", Some(&project)));
        assert_eq!(
            keys(&attributes),
            [
                "code.file.path",
                "code.module.name",
                "code.line.number",
                "thread.id",
                "thread.name",
                "rpc.system",
                "rpc.service",
                "rpc.method",
                "keyward.decision",
                "keyward.reason",
                "keyward.cache",
                "keyward.required_scopes",
                "keyward.key_id",
                "keyward.project",
                "rpc.grpc.status_code",
                "busy_ns",
                "idle_ns",
            ]
        );
        assert_eq!(
            value(&attributes, "rpc.service"),
            Some(&Value::from("keyward.v1.KeyService"))
        );
        assert_eq!(
            value(&attributes, "keyward.required_scopes"),
            Some(&Value::from("orders:read,orders:write"))
        );
        assert_eq!(
            value(&attributes, "keyward.project"),
            Some(&Value::from("acme"))
        );
        assert_eq!(
            value(&attributes, "keyward.key_id"),
            Some(&Value::from("key_01"))
        );
        assert_eq!(value(&attributes, "thread.id"), Some(&Value::I64(7)));
        assert_eq!(
            value(&attributes, "rpc.grpc.status_code"),
            Some(&Value::I64(0))
        );
    }

    #[test]
    fn check_records_observe_and_an_error_code() {
        let attributes = attributes(Kind::Check, &thread(), fields("error", None));
        assert_eq!(
            value(&attributes, "rpc.method"),
            Some(&Value::from("Check"))
        );
        assert_eq!(
            value(&attributes, "keyward.observe"),
            Some(&Value::Bool(true))
        );
        assert_eq!(
            value(&attributes, "rpc.grpc.status_code"),
            Some(&Value::I64(tonic::Code::Unavailable as i64))
        );
        assert!(value(&attributes, "keyward.key_id").is_none());
        assert!(value(&attributes, "keyward.project").is_none());
    }

    #[test]
    fn forward_auth_has_its_mode_and_no_grpc_fields() {
        let attributes = attributes(Kind::ForwardAuth("nginx"), &thread(), fields("deny", None));
        assert_eq!(
            value(&attributes, "keyward.http_mode"),
            Some(&Value::from("nginx"))
        );
        for grpc in [
            "rpc.system",
            "rpc.service",
            "rpc.method",
            "rpc.grpc.status_code",
        ] {
            assert!(value(&attributes, grpc).is_none(), "{grpc}");
        }
        assert_eq!(
            value(&attributes, "keyward.observe"),
            Some(&Value::Bool(true))
        );
    }

    #[test]
    fn thread_ids_are_the_number_in_thread_id_debug() {
        let id = std::thread::current().id();
        let expected = format!("{id:?}");
        assert_eq!(format!("ThreadId({})", thread_id_integer(id)), expected);
    }
}
