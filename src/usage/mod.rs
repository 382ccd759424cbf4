//! Usage analytics: every decision about a known key is counted in memory
//! ([`UsageCounter`]), written to the store in batches ([`UsageWriter`]),
//! and read back as series and busiest keys ([`report`], the `GetUsage`
//! RPC).

pub mod counter;
pub mod flusher;
pub mod report;

pub use counter::UsageCounter;
pub use flusher::UsageWriter;
