//! What a write tells the other replicas, and the one interface it is told
//! through: below `KeyLookup`, which publishes, and the buses, which carry
//! the notice and apply it to a `KeyLookup`.

use async_trait::async_trait;

use crate::key::Digest;

/// An eviction notice: which digest, and when the write happened, so each
/// receiver can measure how late it evicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalidation {
    pub digest: Digest,
    /// When the change committed (µs since the epoch).
    pub at: i64,
    /// The key was created, not narrowed: nothing older can allow too much,
    /// so receivers only evict (a cached "no such key").
    pub created: bool,
}

const CREATED: &str = ":new";

impl Invalidation {
    pub fn encode(&self) -> String {
        let created = if self.created { CREATED } else { "" };
        format!(
            "{}:{}{created}",
            hex::encode(self.digest.as_bytes()),
            self.at
        )
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (text, created) = match text.strip_suffix(CREATED) {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let (digest, at) = text.split_once(':')?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digest, &mut bytes).ok()?;
        Some(Self {
            digest: Digest::from_bytes(bytes),
            at: at.parse().ok()?,
            created,
        })
    }
}

#[async_trait]
pub trait Publisher: Send + Sync {
    /// Tells the other replicas; failures are logged and counted, not
    /// returned: the write has committed, and the outbox tail heals a lost message.
    async fn publish(&self, invalidation: Invalidation);
    fn kind(&self) -> &'static str;
}

/// One replica: the local eviction the write already did is everything.
pub struct LocalBus;

#[async_trait]
impl Publisher for LocalBus {
    async fn publish(&self, _: Invalidation) {}

    fn kind(&self) -> &'static str {
        "local"
    }
}
