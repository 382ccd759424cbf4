//! Which server Sentinel names master, as keyward last heard it.
//!
//! A fail-over has a window (seconds, until the sentinels reconfigure the
//! old master) in which two servers say `ROLE master`. Checking the role is
//! then not enough: every connection remembers the generation of the
//! master it was opened to, and one opened before the sentinels named
//! another is retired (pool recycle, the hot path's shared connection, the
//! bus's subscription), so publishers and subscribers meet on one server.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

#[derive(Debug, Default)]
pub struct MasterWatch {
    named: Mutex<Option<String>>,
    generation: AtomicU64,
}

impl MasterWatch {
    /// Records that the sentinels name `addr`; a change bumps the
    /// generation. Returns the generation now.
    pub fn note(&self, addr: String) -> u64 {
        let mut named = self
            .named
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match named.as_deref() {
            Some(current) if current == addr => {}
            Some(_) => {
                tracing::info!(master = %addr, "Sentinel names a new Redis master");
                metrics::counter!("keyward_redis_master_switches_total").increment(1);
                *named = Some(addr);
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            None => *named = Some(addr),
        }
        self.generation.load(Ordering::Acquire)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_of_master_bumps_the_generation() {
        let watch = MasterWatch::default();
        assert_eq!(watch.note("a:1".into()), 0);
        assert_eq!(watch.note("a:1".into()), 0);
        assert_eq!(watch.note("b:2".into()), 1);
        assert_eq!(watch.note("b:2".into()), 1);
        assert_eq!(watch.generation(), 1);
    }
}
