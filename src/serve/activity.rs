//! Calls in flight on one connection, so that the connection can tell when
//! it has been idle (no call at all) for the idle timeout.
//!
//! The end of a call only records when it happened: the connection looks
//! at that when its idle timer fires, instead of being woken (and
//! re-arming a timer) after every call. A wake-up per call cost a
//! cross-thread unpark per request on a busy keep-alive connection.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

use tokio::time::{Duration, Instant};

pub struct Activity {
    in_flight: AtomicUsize,
    /// Whether any call began: then the client finished its HTTP/2
    /// handshake, and hyper can close the connection by itself.
    served: AtomicBool,
    /// When the connection opened: `last_end` counts from here.
    opened: Instant,
    /// Nanoseconds after `opened` at which the latest call ended (0: none
    /// has).
    last_end: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            opened: Instant::now(),
            last_end: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// Marks a call as started until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Relaxed);
        Busy(self.clone())
    }

    pub fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When the connection will have been idle for `timeout`: `None` while
    /// a call is in flight. Idle time counts from the end of the latest call,
    /// or from the opening if none was made.
    pub fn idle_until(&self, timeout: Duration) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        // `last_end` is stored before the count drops, so a count of zero
        // seen above comes with the end of the call that made it zero.
        let since = Duration::from_nanos(self.last_end.load(Ordering::Acquire));
        Some(self.opened + since + timeout)
    }
}

/// One call in flight.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended = u64::try_from(activity.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        activity.last_end.fetch_max(ended, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_counts_from_the_end_of_the_last_call() {
        let activity = Arc::new(Activity::default());
        let timeout = Duration::from_secs(10);
        assert!(activity.is_idle() && !activity.has_served());
        assert_eq!(
            activity.idle_until(timeout),
            Some(activity.opened + timeout)
        );
        let a = activity.begin();
        assert!(activity.has_served());
        let b = activity.begin();
        drop(a);
        assert!(!activity.is_idle());
        assert_eq!(activity.idle_until(timeout), None, "a call is in flight");
        std::thread::sleep(Duration::from_millis(20));
        let before_end = Instant::now();
        drop(b);
        let after_end = Instant::now();
        assert!(activity.is_idle());
        let due = activity.idle_until(timeout).unwrap();
        assert!(due >= before_end + timeout && due <= after_end + timeout);
    }
}
