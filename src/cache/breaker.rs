//! A circuit breaker for a dependency that can go down (Redis, the store's
//! read path). While open, callers skip the dependency at no cost instead of
//! each paying a timeout; one background task probes it until it answers.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    open: AtomicBool,
    probing: AtomicBool,
}

const FIRST_PROBE: Duration = Duration::from_millis(100);
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(2);

impl Breaker {
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        })
    }

    /// Whether callers should use the dependency now.
    pub fn is_closed(&self) -> bool {
        !self.open.load(Ordering::Relaxed)
    }

    /// Records a failure: opens the breaker and, unless one runs already,
    /// starts a task that calls `probe` with backoff until it returns true.
    pub fn trip<F, Fut>(self: &Arc<Self>, error: &dyn std::fmt::Display, probe: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        if !self.open.swap(true, Ordering::AcqRel) {
            tracing::warn!(dependency = self.name, error = %error, "dependency down; skipping it until it answers");
            metrics::counter!("keyward_dependency_trips_total", "dependency" => self.name)
                .increment(1);
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let breaker = self.clone();
        tokio::spawn(async move {
            let mut interval = FIRST_PROBE;
            loop {
                tokio::time::sleep(interval).await;
                if probe().await {
                    breaker.open.store(false, Ordering::Release);
                    breaker.probing.store(false, Ordering::Release);
                    tracing::info!(dependency = breaker.name, "dependency answers again");
                    return;
                }
                interval = (interval * 2).min(MAX_PROBE_INTERVAL);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn trips_once_and_closes_when_the_probe_succeeds() {
        let breaker = Breaker::new("test");
        assert!(breaker.is_closed());
        let probes = Arc::new(AtomicUsize::new(0));
        let counted = probes.clone();
        let probe = move || {
            let counted = counted.clone();
            async move { counted.fetch_add(1, Ordering::SeqCst) >= 1 }
        };
        breaker.trip(&"boom", probe.clone());
        breaker.trip(&"boom again", probe);
        assert!(!breaker.is_closed());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(breaker.is_closed());
        assert_eq!(
            probes.load(Ordering::SeqCst),
            2,
            "one probing task, two probes"
        );
    }
}
