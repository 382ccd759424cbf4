//! Authorizing proxied HTTP requests (Envoy ext_authz), independent of the
//! wire: find the key ([`credential`]), work out the scopes the request
//! needs ([`routes`], or the route's context extensions), decide through the
//! same [`Verifier`] as `KeyService/Verify`, and build the [`answer`].
//!
//! The gRPC service in `grpc::ext_authz` only converts Envoy's messages to
//! and from these types.

pub mod answer;
pub mod credential;
mod fields;
pub mod path;
mod pattern;
pub mod routes;
pub mod settings;

use std::{
    net::IpAddr,
    sync::atomic::{AtomicBool, Ordering},
};

use self::{credential::Key, routes::Route};
use crate::{
    cache::LookupError,
    decision::Reason,
    limit::quota,
    verify::{Verdict, Verifier},
};

pub use answer::{Action, Answer, Decision, Refusal, Required, Why};
pub use fields::Fields;
pub use settings::{Settings, SettingsFile};

/// Context extension naming the scopes a route needs, comma-separated
/// (`"orders:read,orders:write"`). When present it wins over route rules;
/// an empty value means any valid key.
pub const SCOPES_EXTENSION: &str = "keyward_scopes";
/// Context extension setting a route's mode: `observe` or `enforce`. It wins
/// over the global `observe` setting.
pub const MODE_EXTENSION: &str = "keyward_mode";

/// Headers some frameworks take as the method instead of the request's own.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// What a check looks at.
pub struct CheckInput<'a, H: ?Sized, C: ?Sized> {
    pub method: &'a str,
    /// The request target: path and query string.
    pub path: &'a str,
    pub headers: &'a H,
    pub context: &'a C,
    /// The downstream peer's address as the proxy reports it.
    pub peer: Option<IpAddr>,
}

/// The client's address: the peer, or with `trusted_hops` proxies in front,
/// the address the outermost of them appended to `x-forwarded-for`.
pub fn client_ip<H: Fields + ?Sized>(
    headers: &H,
    peer: Option<IpAddr>,
    trusted_hops: u32,
) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .field("x-forwarded-for")
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let hops = trusted_hops as usize;
    if forwarded.len() < hops {
        return peer;
    }
    forwarded[forwarded.len() - hops].parse().ok()
}

pub struct Authz {
    verifier: Verifier,
    settings: Settings,
}

impl Authz {
    pub fn new(verifier: Verifier, settings: Settings) -> Self {
        Self { verifier, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Decides one request. Fails only when keyward cannot decide (the key
    /// is well-formed and no tier can say what it is) and the route is
    /// enforced: the caller must then fail closed.
    pub async fn check<'a, H, C>(
        &'a self,
        input: &CheckInput<'a, H, C>,
    ) -> Result<Answer<'a>, LookupError>
    where
        H: Fields + ?Sized,
        C: Fields + ?Sized,
    {
        let observe = self.observe(input.context);
        let presented = self.settings.sources.extract(input.headers, input.path);
        let key = presented.key();
        let strip = if self.settings.strip_credential {
            presented.sources
        } else {
            Vec::new()
        };
        let refuse = |why: Why, strip| {
            let answer = Answer::new(why, None, observe, strip);
            log(&answer, input);
            Ok(answer)
        };
        if presented.key == Key::Ambiguous {
            return refuse(Why::AmbiguousCredential, strip);
        }

        let required = match input.context.field(SCOPES_EXTENSION) {
            Some(list) => Required::Listed(list),
            None if !self.settings.routes.apply() => Required::Nothing,
            None => match self.route(input) {
                Ok(Route::Scopes(scopes)) => Required::Rule(scopes),
                Ok(Route::AnyValidKey) => Required::Nothing,
                Ok(Route::Deny) => Required::Unrouted,
                Err(why) => return refuse(why, strip),
            },
        };
        let client = client_ip(input.headers, input.peer, self.settings.xff_trusted_hops);
        let verdict = match &required {
            Required::Listed(list) => {
                let scopes: Vec<&str> = split_scopes(list).collect();
                self.verifier.verify(key, &scopes, client).await
            }
            Required::Rule(scopes) => self.verifier.verify(key, scopes, client).await,
            Required::Nothing | Required::Unrouted => {
                self.verifier.verify::<&str>(key, &[], client).await
            }
        };
        let answer = match verdict {
            Ok(verdict) => {
                let retry_after = retry_after(&verdict);
                let why = match verdict.reason {
                    Reason::Ok if required == Required::Unrouted => Why::NoRoute,
                    reason => Why::Key(reason),
                };
                Answer::new(why, verdict.record, observe, strip).with_limits(
                    verdict.tier,
                    retry_after,
                    verdict.quota_remaining,
                )
            }
            Err(error) if observe => {
                tracing::warn!(%error, "ext_authz: cannot decide; observe mode lets the request through");
                Answer::new(Why::Unavailable, None, observe, strip)
            }
            Err(error) => return Err(error),
        }
        .with_required(required);
        log(&answer, input);
        Ok(answer)
    }

    /// What the route rules ask of this request. A method-override header
    /// that would land the request on another rule than its method does is
    /// refused: an upstream honouring it would run a method keyward did not
    /// check.
    fn route<H, C>(&self, input: &CheckInput<'_, H, C>) -> Result<Route<'_>, Why>
    where
        H: Fields + ?Sized,
        C: ?Sized,
    {
        let routes = &self.settings.routes;
        let unreadable = |error: path::PathError| {
            tracing::debug!(error = error.as_str(), "check: path has no canonical form");
            Why::PathNotNormal
        };
        let route = routes.route(input.method, input.path).map_err(unreadable)?;
        for name in METHOD_OVERRIDES {
            if let Some(method) = input.headers.field(name)
                && routes
                    .route(method.trim(), input.path)
                    .map_err(unreadable)?
                    != route
            {
                return Err(Why::MethodOverride);
            }
        }
        Ok(route)
    }

    fn observe<C: Fields + ?Sized>(&self, context: &C) -> bool {
        match context.field(MODE_EXTENSION) {
            None => self.settings.observe,
            Some("observe") => true,
            Some("enforce") => false,
            Some(other) => {
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        value = other,
                        "ext_authz: unknown {MODE_EXTENSION}; enforcing (use observe or enforce)"
                    );
                }
                false
            }
        }
    }
}

/// When a refused call may try again: the rate limiter's wait, or when an
/// exhausted quota resets.
fn retry_after(verdict: &Verdict) -> Option<std::time::Duration> {
    match verdict.reason {
        Reason::RateLimited => verdict.retry_after,
        Reason::QuotaExceeded => verdict
            .record
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.quota.as_ref())
            .and_then(|q| quota::resets_in(q, chrono::Utc::now())),
        _ => None,
    }
}

/// The scopes of a `keyward_scopes` value: comma-separated, spaces allowed.
pub fn split_scopes(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Observe mode letting through a request it would have denied is worth an
/// info line with the route (every decision is also a debug event and a
/// span, see `telemetry::decision`). Never the key, nor its digest.
fn log<H: ?Sized, C: ?Sized>(answer: &Answer<'_>, input: &CheckInput<'_, H, C>) {
    if answer.decision != Decision::WouldDeny {
        return;
    }
    tracing::info!(
        key_id = answer.record.as_ref().map(|r| r.id.as_str()),
        project = answer.record.as_ref().map(|r| &*r.project),
        decision = answer.decision.as_str(),
        reason = answer.why.as_str(),
        observe = answer.observe,
        method = input.method,
        path = path::without_query(input.path),
        "check"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_client_address_comes_from_the_peer_or_trusted_proxies() {
        let peer: Option<IpAddr> = Some("10.0.0.9".parse().unwrap());
        let headers = HashMap::from([(
            "x-forwarded-for".to_string(),
            "203.0.113.7, 198.51.100.2".to_string(),
        )]);
        assert_eq!(
            client_ip(&headers, peer, 0),
            peer,
            "by default the header is not trusted"
        );
        assert_eq!(
            client_ip(&headers, peer, 1),
            Some("198.51.100.2".parse().unwrap())
        );
        assert_eq!(
            client_ip(&headers, peer, 2),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_ip(&headers, peer, 3),
            peer,
            "fewer hops than trusted: the peer"
        );
        let garbage = HashMap::from([("x-forwarded-for".to_string(), "nope".to_string())]);
        assert_eq!(
            client_ip(&garbage, peer, 1),
            None,
            "an unreadable address proves nothing"
        );
    }

    #[test]
    fn scope_lists_split_on_commas() {
        let scopes: Vec<_> = split_scopes(" orders:read, orders:write,,").collect();
        assert_eq!(scopes, ["orders:read", "orders:write"]);
        assert_eq!(split_scopes("").count(), 0);
    }
}
