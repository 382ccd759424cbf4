//! Calls in flight on one connection, so that the connection can tell when
//! it has been idle (no call at all) for the idle timeout.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Whether any call began: then the client finished its HTTP/2
    /// handshake, and hyper can close the connection by itself.
    served: AtomicBool,
    /// Signalled when the last call in flight ends.
    went_idle: Notify,
}

impl Activity {
    /// Marks a call as started until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
        Busy(self.clone())
    }

    pub fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// Completes once the connection is idle again after a call (at once
    /// if that happened since the last wait: `Notify` keeps one permit).
    pub async fn went_idle(&self) {
        self.went_idle.notified().await;
    }
}

/// One call in flight.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.went_idle.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn idle_only_when_the_last_call_ends() {
        let activity = Arc::new(Activity::default());
        assert!(activity.is_idle() && !activity.has_served());
        let a = activity.begin();
        assert!(activity.has_served());
        let b = activity.begin();
        drop(a);
        assert!(!activity.is_idle());
        drop(b);
        assert!(activity.is_idle());
        tokio::time::timeout(Duration::from_secs(1), activity.went_idle())
            .await
            .expect("the end of the last call is signalled");
    }
}
