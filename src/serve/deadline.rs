//! The request timeout: a request body that has not arrived in full by its
//! deadline fails, so the handler waiting for it gives up and every byte it
//! held is freed. Counted in `keyward_request_timeouts_total`.
//!
//! The timer is only started when the body is not ready at once, so a
//! small call that arrives in one piece costs no timer.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::Status;

use super::Refusal;

pub struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, deadline: Instant) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
            expired: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = B::Data;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        this.expired = true;
        metrics::counter!("keyward_request_timeouts_total").increment(1);
        // A Status, so tonic answers with this code rather than UNKNOWN.
        Poll::Ready(Some(Err(Box::new(Status::from(Refusal::RequestTimeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, time::Duration};

    use bytes::Bytes;
    use http_body_util::BodyExt;

    use super::*;

    /// A body whose first frame is ready and which then never ends, as a
    /// client that stops sending half-way.
    struct Stalled {
        sent: bool,
    }

    impl Body for Stalled {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.sent {
                Poll::Pending
            } else {
                self.sent = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"part")))))
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_fails_at_its_deadline() {
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut body = DeadlineBody::new(Stalled { sent: false }, deadline);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "part");
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(Instant::now() >= deadline);
        let status = error.downcast::<Status>().unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_complete_body_is_passed_through() {
        let inner = http_body_util::Full::new(Bytes::from_static(b"whole"));
        let mut body = DeadlineBody::new(inner, Instant::now() + Duration::from_secs(1));
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, "whole");
        assert!(body.frame().await.is_none());
    }
}
