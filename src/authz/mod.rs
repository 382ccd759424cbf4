//! Authorizing proxied HTTP requests (Envoy ext_authz), independent of the
//! wire: find the key ([`credential`]), work out the scopes the request
//! needs ([`routes`], or the route's context extensions), decide through the
//! same [`Verifier`] as `KeyService/Verify`, and build the [`answer`].
//!
//! The gRPC service in `grpc::ext_authz` only converts Envoy's messages to
//! and from these types.

pub mod answer;
pub mod credential;
pub mod routes;
pub mod settings;

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use crate::{cache::LookupError, verify::Verifier};

pub use answer::{Action, Answer, Decision, Refusal, Required, Why};
pub use settings::{Settings, SettingsFile};

/// Context extension naming the scopes a route needs, comma-separated
/// (`"orders:read,orders:write"`). When present it wins over route rules;
/// an empty value means any valid key.
pub const SCOPES_EXTENSION: &str = "keyward_scopes";
/// Context extension setting a route's mode: `observe` or `enforce`. It wins
/// over the global `observe` setting.
pub const MODE_EXTENSION: &str = "keyward_mode";

/// Read access to named string fields: request headers (lower-case names)
/// or context extensions.
pub trait Fields {
    fn field(&self, name: &str) -> Option<&str>;
}

impl Fields for HashMap<String, String> {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// What a check looks at.
pub struct CheckInput<'a, H: ?Sized, C: ?Sized> {
    pub method: &'a str,
    /// The request target: path and query string.
    pub path: &'a str,
    pub headers: &'a H,
    pub context: &'a C,
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
        let credential = self.settings.sources.extract(input.headers, input.path);
        let strip = credential
            .filter(|_| self.settings.strip_credential)
            .map(|c| c.source);
        let key = credential.map_or("", |c| c.key);

        let required = match input.context.field(SCOPES_EXTENSION) {
            Some(list) => Required::Listed(list),
            None if self.settings.routes.is_empty() => Required::Nothing,
            None if !routes::is_normal(input.path) => {
                let answer = Answer::new(Why::PathNotNormal, None, observe, strip);
                log(&answer, input);
                return Ok(answer);
            }
            None => match self.settings.routes.find(input.method, input.path) {
                Some(rule) => Required::Rule(rule.scopes()),
                None => Required::Nothing,
            },
        };
        let verdict = match &required {
            Required::Listed(list) => {
                let scopes: Vec<&str> = split_scopes(list).collect();
                self.verifier.verify(key, &scopes).await
            }
            Required::Rule(scopes) => self.verifier.verify(key, scopes).await,
            Required::Nothing => self.verifier.verify::<&str>(key, &[]).await,
        };
        let answer = match verdict {
            Ok(verdict) => Answer::new(Why::Key(verdict.reason), verdict.record, observe, strip),
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

/// The scopes of a `keyward_scopes` value: comma-separated, spaces allowed.
pub fn split_scopes(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// One event per check: debug, or info when observe mode lets through a
/// request it would have denied. Never the key, nor its digest.
fn log<H: ?Sized, C: ?Sized>(answer: &Answer<'_>, input: &CheckInput<'_, H, C>) {
    let key_id = answer.record.as_ref().map(|r| r.id.as_str());
    let project = answer.record.as_ref().map(|r| &*r.project);
    let decision = answer.decision.as_str();
    let reason = answer.why.as_str();
    let path = routes::path_only(input.path);
    if answer.decision == Decision::WouldDeny {
        tracing::info!(
            key_id,
            project,
            decision,
            reason,
            observe = answer.observe,
            method = input.method,
            path,
            "check"
        );
    } else {
        tracing::debug!(
            key_id,
            project,
            decision,
            reason,
            observe = answer.observe,
            method = input.method,
            path,
            "check"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_split_on_commas() {
        let scopes: Vec<_> = split_scopes(" orders:read, orders:write,,").collect();
        assert_eq!(scopes, ["orders:read", "orders:write"]);
        assert_eq!(split_scopes("").count(), 0);
    }
}
