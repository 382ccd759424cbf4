//! What the store keeps of usage: calls per key, per minute, per outcome,
//! written in batches by [`crate::usage`], and rolled up into hours later.

use chrono::{DateTime, Utc};

use crate::key::KeyId;

/// The outcome name of an allowed call; denials use [`Reason::as_str`].
///
/// [`Reason::as_str`]: crate::decision::Reason::as_str
pub const ALLOWED: &str = "ok";

/// Calls of one key in one minute with one outcome, to be added to what the
/// store already holds for that minute (replicas write the same minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    pub key_id: KeyId,
    pub project: String,
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    /// [`ALLOWED`] or a denial reason's name.
    pub outcome: &'static str,
    pub calls: i64,
}

/// Whose usage, over which range (`since` inclusive, `until` exclusive).
#[derive(Debug, Clone)]
pub enum UsageOwner {
    Key(KeyId),
    Project(String),
}

#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub owner: UsageOwner,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Calls with one outcome in one bucket of the requested size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// Bucket starts are multiples of the bucket size since the epoch (UTC).
    pub start: DateTime<Utc>,
    pub outcome: String,
    pub calls: i64,
}

/// One key's totals over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTotals {
    pub key_id: KeyId,
    pub label: String,
    pub allowed: i64,
    pub denied: i64,
}

/// What one roll-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolledUp {
    /// Minute rows folded into hour rows.
    pub minutes: u64,
    /// Hour rows deleted for age.
    pub hours_pruned: u64,
}

/// Each key's latest minute with an allowed call in `counts`, for
/// `last_used_at`: (ids, minutes), in matching order.
pub(super) fn last_allowed(counts: &[UsageCount]) -> (Vec<KeyId>, Vec<DateTime<Utc>>) {
    let mut latest = std::collections::BTreeMap::<&KeyId, DateTime<Utc>>::new();
    for count in counts.iter().filter(|c| c.outcome == ALLOWED) {
        latest
            .entry(&count.key_id)
            .and_modify(|at| *at = (*at).max(count.minute))
            .or_insert(count.minute);
    }
    latest.into_iter().map(|(id, at)| (id.clone(), at)).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(id: &KeyId, minute: i64, outcome: &'static str) -> UsageCount {
        UsageCount {
            key_id: id.clone(),
            project: "p".into(),
            minute: DateTime::from_timestamp(minute * 60, 0).unwrap(),
            outcome,
            calls: 1,
        }
    }

    #[test]
    fn last_allowed_takes_each_keys_latest_allowed_minute_only() {
        let (a, b, c) = (KeyId::generate(), KeyId::generate(), KeyId::generate());
        let counts = [
            count(&a, 5, ALLOWED),
            count(&a, 9, "revoked"),
            count(&a, 7, ALLOWED),
            count(&b, 3, ALLOWED),
            count(&c, 8, "rate_limited"),
        ];
        let (ids, at) = last_allowed(&counts);
        let mut pairs: Vec<_> = ids.into_iter().zip(at).collect();
        pairs.sort();
        let mut expected = vec![
            (a, DateTime::from_timestamp(7 * 60, 0).unwrap()),
            (b, DateTime::from_timestamp(3 * 60, 0).unwrap()),
        ];
        expected.sort();
        assert_eq!(pairs, expected);
    }
}
