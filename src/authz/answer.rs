//! The answer to one check, built from the decision: what goes upstream on
//! allow, and the constant refusal a client sees on deny.
//!
//! Refusals are constants on purpose: a missing, malformed, unknown, revoked
//! or expired key all get the same status, headers and body, so a client
//! cannot probe which keys exist. The reason goes to logs, never to the
//! client.

use std::{sync::Arc, time::Duration};

use super::credential::Source;
use crate::{cache::Tier, decision::Reason, record::KeyRecord};

/// Headers keyward sets on allowed requests (overwriting any the client
/// sent) and removes from requests it lets through unidentified.
pub const KEY_ID_HEADER: &str = "x-keyward-key-id";
pub const PROJECT_HEADER: &str = "x-keyward-project";
/// Response header telling the client what is left of its key's quota.
pub const QUOTA_REMAINING_HEADER: &str = "x-keyward-quota-remaining";

const JSON: (&str, &str) = ("content-type", "application/json");

/// What a denied client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no usable key (missing, malformed, unknown, revoked, expired).
    Unauthorized,
    /// 403: a valid key that may not do this (scope, source).
    Forbidden,
    /// 429: rate limited or over quota.
    TooManyRequests { retry_after_secs: u64 },
    /// 400: a path keyward's route rules cannot be applied to safely.
    BadRequest,
}

impl Refusal {
    pub fn for_reason(reason: Reason) -> Option<Self> {
        match reason {
            Reason::Ok => None,
            Reason::Missing
            | Reason::Malformed
            | Reason::Unknown
            | Reason::Revoked
            | Reason::Expired => Some(Refusal::Unauthorized),
            Reason::InsufficientScope | Reason::SourceNotAllowed => Some(Refusal::Forbidden),
            // Without a better hint (see `with_retry_after`), one second is
            // the shortest honest one.
            Reason::RateLimited | Reason::QuotaExceeded => Some(Refusal::TooManyRequests {
                retry_after_secs: 1,
            }),
        }
    }

    /// A 429 that says when to retry: the wait rounded up to whole seconds
    /// (what `retry-after` carries), at least one.
    pub fn too_many_requests(wait: Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Refusal::TooManyRequests {
            retry_after_secs: secs.max(1),
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthorized => 401,
            Refusal::Forbidden => 403,
            Refusal::TooManyRequests { .. } => 429,
            Refusal::BadRequest => 400,
        }
    }

    pub fn body(self) -> &'static str {
        match self {
            Refusal::Unauthorized => r#"{"error":"unauthorized"}"#,
            Refusal::Forbidden => r#"{"error":"forbidden"}"#,
            Refusal::TooManyRequests { .. } => r#"{"error":"too_many_requests"}"#,
            Refusal::BadRequest => r#"{"error":"bad_request"}"#,
        }
    }

    /// Response headers besides the status; `retry-after` for 429.
    pub fn headers(self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(JSON.0, JSON.1.to_owned())];
        match self {
            Refusal::Unauthorized => {
                headers.push(("www-authenticate", r#"ApiKey realm="keyward""#.to_owned()))
            }
            Refusal::TooManyRequests { retry_after_secs } => {
                headers.push(("retry-after", retry_after_secs.to_string()));
                // draft-ietf-httpapi-ratelimit-headers: nothing left, resets
                // in t seconds.
                headers.push(("ratelimit", format!("\"keyward\";r=0;t={retry_after_secs}")));
            }
            Refusal::Forbidden | Refusal::BadRequest => {}
        }
        headers
    }
}

/// Why a check decided as it did, beyond the key's own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Key(Reason),
    /// Route rules apply and the path has no canonical form.
    PathNotNormal,
    /// Credential sources hold different keys.
    AmbiguousCredential,
    /// A method-override header names a method another rule applies to.
    MethodOverride,
    /// A valid key, but no route rule matches and `default_route = "deny"`.
    NoRoute,
    /// No tier could look the key up (only answered in observe mode; in
    /// enforce mode this is an error, so Envoy fails closed).
    Unavailable,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Key(reason) => reason.as_str(),
            Why::PathNotNormal => "path_not_normal",
            Why::AmbiguousCredential => "ambiguous_credential",
            Why::MethodOverride => "method_override",
            Why::NoRoute => "no_route",
            Why::Unavailable => "unavailable",
        }
    }

    fn refusal(self) -> Option<Refusal> {
        match self {
            Why::Key(reason) => Refusal::for_reason(reason),
            Why::PathNotNormal | Why::MethodOverride => Some(Refusal::BadRequest),
            // Looks like any other bad key to the client.
            Why::AmbiguousCredential => Some(Refusal::Unauthorized),
            Why::NoRoute => Some(Refusal::Forbidden),
            // Fails closed as a gRPC error when enforced.
            Why::Unavailable => Some(Refusal::Unauthorized),
        }
    }
}

/// The decision as logs and access logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Observe mode: denied in effect, but let through.
    WouldDeny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::WouldDeny => "would_deny",
        }
    }
}

/// What to tell the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// Let the request through. With `identity`, set the key-id and project
    /// headers from it; without, remove them so a client cannot forge them.
    /// `strip` names every credential to remove.
    Allow {
        identity: Option<Arc<KeyRecord>>,
        strip: Vec<Source<'a>>,
    },
    Deny(Refusal),
}

/// The scopes a request needed, and where that came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required<'a> {
    /// From the `keyward_scopes` context extension, as written.
    Listed(&'a str),
    /// From a route rule.
    Rule(&'a [String]),
    /// No extension and no matching rule: any valid key.
    Nothing,
    /// No matching rule and `default_route = "deny"`: no key will do (the
    /// key is still checked, so a bad one gets the usual 401).
    Unrouted,
}

impl Required<'_> {
    /// Comma-separated, for logs; `None` when nothing was required.
    pub fn joined(&self) -> Option<String> {
        match self {
            Required::Listed(list) => Some(super::split_scopes(list).collect::<Vec<_>>().join(",")),
            Required::Rule(scopes) => Some(scopes.join(",")),
            Required::Nothing | Required::Unrouted => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Answer<'a> {
    pub action: Action<'a>,
    pub decision: Decision,
    pub why: Why,
    /// The key's record when it exists, even when denied (for logs).
    pub record: Option<Arc<KeyRecord>>,
    pub observe: bool,
    pub required: Required<'a>,
    /// Which cache tier answered, for the decision span.
    pub tier: Option<Tier>,
    /// What is left of the key's quota after an allowed call.
    pub quota_remaining: Option<i64>,
}

impl<'a> Answer<'a> {
    /// `strip` is every source a credential came from, when they are to be
    /// removed.
    pub fn new(
        why: Why,
        record: Option<Arc<KeyRecord>>,
        observe: bool,
        strip: Vec<Source<'a>>,
    ) -> Self {
        let (action, decision) = match why.refusal() {
            None => (
                Action::Allow {
                    identity: record.clone(),
                    strip,
                },
                Decision::Allow,
            ),
            Some(_) if observe => (
                Action::Allow {
                    identity: None,
                    strip,
                },
                Decision::WouldDeny,
            ),
            Some(refusal) => (Action::Deny(refusal), Decision::Deny),
        };
        Self {
            action,
            decision,
            why,
            record,
            observe,
            required: Required::Nothing,
            tier: None,
            quota_remaining: None,
        }
    }

    pub fn with_required(mut self, required: Required<'a>) -> Self {
        self.required = required;
        self
    }

    /// The limiter's details: when to retry a 429, what is left of a quota.
    pub fn with_limits(
        mut self,
        tier: Option<Tier>,
        retry_after: Option<Duration>,
        quota_remaining: Option<i64>,
    ) -> Self {
        self.tier = tier;
        self.quota_remaining = quota_remaining;
        if let (Action::Deny(Refusal::TooManyRequests { .. }), Some(wait)) =
            (&self.action, retry_after)
        {
            self.action = Action::Deny(Refusal::too_many_requests(wait));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyId;

    fn record() -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: KeyId::generate(),
            project: "acme".into(),
            scopes: Arc::from([]),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        })
    }

    #[test]
    fn every_reason_has_its_status() {
        let statuses: Vec<_> = Reason::ALL
            .iter()
            .map(|r| Refusal::for_reason(*r).map(Refusal::status))
            .collect();
        assert_eq!(
            statuses,
            [
                None,
                Some(401),
                Some(401),
                Some(401),
                Some(401),
                Some(401),
                Some(403),
                Some(429),
                Some(429),
                Some(403)
            ]
        );
    }

    #[test]
    fn bad_keys_look_the_same_whatever_the_reason() {
        let refusals: Vec<_> = [
            Reason::Missing,
            Reason::Malformed,
            Reason::Unknown,
            Reason::Revoked,
            Reason::Expired,
        ]
        .into_iter()
        .map(|r| {
            let refusal = Refusal::for_reason(r).unwrap();
            (refusal.status(), refusal.headers(), refusal.body())
        })
        .collect();
        assert!(refusals.windows(2).all(|w| w[0] == w[1]));
        let (_, headers, body) = &refusals[0];
        assert_eq!(*body, r#"{"error":"unauthorized"}"#);
        assert!(headers.contains(&("www-authenticate", r#"ApiKey realm="keyward""#.into())));
    }

    #[test]
    fn too_many_requests_says_when_to_retry() {
        let headers = Refusal::for_reason(Reason::RateLimited).unwrap().headers();
        assert!(headers.contains(&("retry-after", "1".into())));
        let answer = Answer::new(Why::Key(Reason::RateLimited), Some(record()), false, vec![])
            .with_limits(Some(Tier::L1), Some(Duration::from_millis(2_100)), None);
        let Action::Deny(refusal) = answer.action else {
            panic!("denied")
        };
        assert_eq!(
            refusal,
            Refusal::TooManyRequests {
                retry_after_secs: 3
            }
        );
        let headers = refusal.headers();
        assert!(headers.contains(&("retry-after", "3".into())));
        assert!(headers.contains(&("ratelimit", r#""keyward";r=0;t=3"#.into())));
        assert_eq!(
            Refusal::too_many_requests(Duration::from_millis(1)),
            Refusal::TooManyRequests {
                retry_after_secs: 1
            }
        );
    }

    #[test]
    fn allow_carries_identity_and_strips_the_credential() {
        let r = record();
        let a = Answer::new(
            Why::Key(Reason::Ok),
            Some(r.clone()),
            false,
            vec![Source::Header("x-api-key"), Source::Header("authorization")],
        );
        assert_eq!(a.decision, Decision::Allow);
        assert_eq!(
            a.action,
            Action::Allow {
                identity: Some(r),
                strip: vec![Source::Header("x-api-key"), Source::Header("authorization")]
            }
        );
    }

    #[test]
    fn deny_refuses_and_observe_lets_through_without_identity() {
        let r = record();
        let denied = Answer::new(
            Why::Key(Reason::InsufficientScope),
            Some(r.clone()),
            false,
            vec![],
        );
        assert_eq!(denied.decision, Decision::Deny);
        assert_eq!(denied.action, Action::Deny(Refusal::Forbidden));

        let observed = Answer::new(
            Why::Key(Reason::InsufficientScope),
            Some(r),
            true,
            vec![Source::Header("authorization")],
        );
        assert_eq!(observed.decision, Decision::WouldDeny);
        assert_eq!(
            observed.action,
            Action::Allow {
                identity: None,
                strip: vec![Source::Header("authorization")]
            }
        );
        assert_eq!(observed.why.as_str(), "insufficient_scope");

        let ok_observed = Answer::new(Why::Key(Reason::Ok), Some(record()), true, vec![]);
        assert_eq!(ok_observed.decision, Decision::Allow);
    }

    #[test]
    fn unnormal_paths_are_bad_requests() {
        let a = Answer::new(Why::PathNotNormal, None, false, vec![]);
        assert_eq!(a.action, Action::Deny(Refusal::BadRequest));
        assert_eq!(Refusal::BadRequest.status(), 400);
    }

    #[test]
    fn ambiguous_keys_look_like_bad_keys_and_unrouted_paths_are_forbidden() {
        let a = Answer::new(Why::AmbiguousCredential, None, false, vec![]);
        assert_eq!(a.action, Action::Deny(Refusal::Unauthorized));
        let a = Answer::new(Why::NoRoute, Some(record()), false, vec![]);
        assert_eq!(a.action, Action::Deny(Refusal::Forbidden));
        assert_eq!(a.why.as_str(), "no_route");
    }
}
