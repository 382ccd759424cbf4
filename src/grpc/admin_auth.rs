//! Admin authentication: `authorization: Bearer <admin key>`.
//!
//! Admin keys are ordinary keyward keys holding the `keyward:admin` scope,
//! by name: no wildcard covers a reserved scope (`scope::covers`). A key of
//! the reserved project `keyward` reaches every project; a key of any other
//! project reaches that project only. Only an all-projects admin may grant
//! reserved scopes, so a project admin cannot mint admins at all.

use tonic::{Request, metadata::MetadataMap};

use crate::{
    admin::{ADMIN_PROJECT, Actor, Reach},
    decision::Reason,
    error::Error,
    scope, validate,
    verify::Verifier,
};

pub async fn authenticate<T>(verifier: &Verifier, request: &Request<T>) -> Result<Actor, Error> {
    let key = bearer(request.metadata())?;
    // An admin key restricted to some addresses must come from one of them.
    let source = request.remote_addr().map(|addr| addr.ip());
    let verdict = verifier.verify(key, &[scope::ADMIN], source).await?;
    match (verdict.reason, verdict.record) {
        (Reason::Ok, Some(record)) => Ok(Actor {
            key_id: Some(record.id.clone()),
            reach: if &*record.project == ADMIN_PROJECT {
                Reach::AllProjects
            } else {
                Reach::Project(record.project.clone())
            },
            source: request
                .remote_addr()
                .map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
        }),
        (Reason::InsufficientScope, _) => Err(Error::PermissionDenied(format!(
            "this key lacks the {} scope",
            scope::ADMIN
        ))),
        (Reason::SourceNotAllowed, _) => Err(Error::PermissionDenied(
            "this admin key may not be used from this address".to_owned(),
        )),
        (Reason::RateLimited | Reason::QuotaExceeded, _) => Err(Error::ResourceExhausted(
            "this admin key is over its rate limit or quota".to_owned(),
        )),
        // Which of missing, malformed, unknown, revoked or expired is not the
        // caller's business.
        _ => Err(Error::Unauthenticated("invalid admin key".to_owned())),
    }
}

fn bearer(metadata: &MetadataMap) -> Result<&str, Error> {
    let missing = || {
        Error::Unauthenticated(
            "missing admin key: send `authorization: Bearer <admin key>`".to_owned(),
        )
    };
    let value = metadata.get("authorization").ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, key) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(missing());
    }
    validate::key_length("authorization", key)
        .map_err(|_| Error::Unauthenticated("invalid admin key".to_owned()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn bearer_takes_the_key_after_the_scheme() {
        assert_eq!(bearer(&metadata("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(&metadata("bearer  abc ")).unwrap(), "abc");
    }

    #[test]
    fn anything_else_is_unauthenticated() {
        for bad in ["abc", "Basic abc", "Bearer ", "Bearer"] {
            assert!(
                matches!(bearer(&metadata(bad)), Err(Error::Unauthenticated(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            bearer(&MetadataMap::new()),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            bearer(&metadata(&format!("Bearer {}", "k".repeat(600)))),
            Err(Error::Unauthenticated(_))
        ));
    }
}
