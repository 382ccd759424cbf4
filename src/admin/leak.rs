//! Leak reports: a scanner (GitHub's secret-scanning partner programme, or
//! an internal one through the ReportLeak RPC) says where it found tokens;
//! each live keyward key among them is revoked at once, through the same
//! path as Revoke (one transaction with its audit event and outbox row,
//! then eviction and the bus).
//!
//! Labels, decided on the row the revoke locked:
//! - `TruePositive`: a key of this deployment the reporter may act on that
//!   was not revoked (active, rotating or expired: an expired key can be
//!   extended by UpdateKey, so it is revoked too), or one already revoked
//!   for a leak, so a token reported again from another place gets the
//!   same answer.
//! - `FalsePositive`: anything else: not a keyward key (checksum), no such
//!   key here, a key revoked for another reason, or a key of a project the
//!   reporting admin does not reach (told apart from nothing, as elsewhere).

use chrono::Utc;
use serde_json::json;

use super::{Actor, Admin, Reach};
use crate::{
    error::Error,
    key::{Digest, format},
    store::AuditAction,
};

/// Most tokens in one report; a larger one is refused whole rather than
/// half done.
pub const MAX_LEAKED_TOKENS: usize = 1000;
/// What a revoke reason may hold (as Revoke's own limit).
const MAX_REASON: usize = 512;
/// The longest URL or source kept in the audit details.
const MAX_DETAIL: usize = 2048;
/// Starts every reason this module writes, and tells a leak revoke apart.
const REASON_PREFIX: &str = "leaked: reported by ";

/// One token a scanner found, in GitHub's shape.
#[derive(Debug, Clone, Default)]
pub struct LeakedToken {
    pub token: String,
    /// The reporter's name for the kind of token (GitHub's `type`).
    pub token_type: String,
    /// Where it was found.
    pub url: String,
    /// What kind of place (GitHub: `content`, `commit`, `issue_comment`...).
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakLabel {
    TruePositive,
    FalsePositive,
}

impl LeakLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            LeakLabel::TruePositive => "true_positive",
            LeakLabel::FalsePositive => "false_positive",
        }
    }
}

impl Admin {
    /// Revokes every live key among `tokens`; one label per token, in
    /// order. `reporter` is a fixed name (`github`, `rpc`): it labels a
    /// metric. A store failure stops the report with an error: keys
    /// revoked before it stay revoked, and the reporter retries.
    pub async fn report_leaks(
        &self,
        actor: &Actor,
        reporter: &'static str,
        tokens: &[LeakedToken],
    ) -> Result<Vec<LeakLabel>, Error> {
        if tokens.len() > MAX_LEAKED_TOKENS {
            return Err(Error::invalid(
                "tokens",
                format!("more than {MAX_LEAKED_TOKENS} in one report"),
            ));
        }
        let mut labels = Vec::with_capacity(tokens.len());
        for token in tokens {
            labels.push(self.report_leak(actor, reporter, token).await?);
        }
        Ok(labels)
    }

    async fn report_leak(
        &self,
        actor: &Actor,
        reporter: &'static str,
        token: &LeakedToken,
    ) -> Result<LeakLabel, Error> {
        let Ok(parsed) = format::parse(&token.token) else {
            return Ok(LeakLabel::FalsePositive);
        };
        let Some(record) = self.store.find_by_digest(&Digest::of(parsed)).await? else {
            return Ok(LeakLabel::FalsePositive);
        };
        if let Reach::Project(own) = &actor.reach
            && **own != *record.project
        {
            return Ok(LeakLabel::FalsePositive);
        }
        let now = Utc::now();
        let reason = reason(reporter, &token.url);
        let details = json!({
            "reason": reason,
            "reporter": reporter,
            "url": bounded(&token.url, MAX_DETAIL),
            "source": bounded(&token.source, MAX_DETAIL),
            "token_type": bounded(&token.token_type, MAX_DETAIL),
        });
        let by = actor.write_by(AuditAction::RevokeLeaked, now, details);
        let key = match self.revoke_by(&record.id, now, &reason, &by).await {
            Ok(key) => key,
            // Deleted, or out of reach, between the read and the lock.
            Err(Error::NotFound(_)) => return Ok(LeakLabel::FalsePositive),
            Err(error) => return Err(error),
        };
        let revoked_now = key.revoked_at == Some(now);
        if revoked_now {
            metrics::counter!("keyward_leaked_keys_revoked_total", "reporter" => reporter)
                .increment(1);
            tracing::warn!(key_id = %key.id, project = %key.project, reporter, "leaked key revoked");
        }
        let leaked_before = key
            .revoke_reason
            .as_deref()
            .is_some_and(|r| r.starts_with(REASON_PREFIX));
        Ok(if revoked_now || leaked_before {
            LeakLabel::TruePositive
        } else {
            LeakLabel::FalsePositive
        })
    }
}

/// `leaked: reported by <reporter> at <url>`, within Revoke's limit.
fn reason(reporter: &str, url: &str) -> String {
    let mut reason = format!("{REASON_PREFIX}{reporter}");
    if !url.is_empty() {
        reason.push_str(" at ");
        reason.push_str(url);
    }
    bounded(&reason, MAX_REASON)
}

/// `text` without control characters (it reaches logs and terminals),
/// cut at a character boundary to at most `max` bytes.
fn bounded(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_reporter_and_place_within_the_limit() {
        assert_eq!(
            reason("github", "https://github.com/a/b/blob/x/.env"),
            "leaked: reported by github at https://github.com/a/b/blob/x/.env"
        );
        assert_eq!(reason("rpc", ""), "leaked: reported by rpc");
        let long = format!("https://example.com/{}", "é".repeat(400));
        let cut = reason("github", &long);
        assert!(cut.len() <= MAX_REASON && cut.starts_with(REASON_PREFIX));
        assert_eq!(bounded("a\nb\u{1b}[31mc", 100), "ab[31mc");
    }
}
