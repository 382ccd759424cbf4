//! A panic inside a handler becomes an INTERNAL status (`500` for HTTP) on
//! that one call: never a reset stream, never a dead connection task. Counted in
//! `keyward_handler_panics_total`.

use std::{
    convert::Infallible,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
};

use futures_util::FutureExt;
use http::Response;
use tonic::body::Body;

use super::{Refusal, handlers::refusal_response};
use crate::http::Kind;

/// Runs `call` and the future it returns, answering INTERNAL if either
/// panics. `path` names the RPC in the log (never a header or a body).
pub async fn catch_panic<F>(path: &str, kind: Kind, call: impl FnOnce() -> F) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    // Unwind safety: what a handler shares (caches, pools, counters) is
    // behind locks or atomics that a panic cannot leave half-updated in a
    // way later calls would trust; the call itself is abandoned.
    let outcome = match catch_unwind(AssertUnwindSafe(call)) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(payload) => Err(payload),
    };
    match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_payload) => {
            // The payload is not logged: a panic message may quote values
            // that must not reach the logs.
            metrics::counter!("keyward_handler_panics_total").increment(1);
            tracing::error!(
                rpc = path,
                "a handler panicked; the call was answered INTERNAL"
            );
            refusal_response(kind, Refusal::Panicked)
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tonic::{Code, Status};

    use super::*;

    fn code(response: &Response<Body>) -> Code {
        let value = response
            .headers()
            .get("grpc-status")
            .expect("a gRPC status")
            .to_str()
            .unwrap();
        Code::from_i32(value.parse().unwrap())
    }

    async fn ok() -> Result<Response<Body>, Infallible> {
        Ok(Status::ok("").into_http())
    }

    #[test]
    fn a_panicking_handler_answers_internal_and_is_counted() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                // A panic while polling, after an await point.
                let polled = catch_panic("/t/Async", Kind::Grpc, || async {
                    tokio::task::yield_now().await;
                    panic!("boom");
                    #[allow(unreachable_code)]
                    ok().await
                })
                .await;
                assert_eq!(code(&polled), Code::Internal);
                // A panic in the call itself, before any future exists.
                let called = catch_panic("/t/Sync", Kind::Grpc, || -> std::future::Ready<_> {
                    panic!("boom")
                })
                .await;
                assert_eq!(code(&called), Code::Internal);
                // The next call is served as if nothing happened.
                let fine = catch_panic("/t/Ok", Kind::Grpc, ok).await;
                assert_eq!(code(&fine), Code::Ok);
            })
        });
        let text = handle.render();
        assert!(text.contains("keyward_handler_panics_total 2"), "{text}");
    }
}
