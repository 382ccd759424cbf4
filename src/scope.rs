//! Scopes: what a key may do. `orders:read` is a scope; `orders:*` grants
//! every scope that starts with `orders:`, except reserved ones.

/// The scope that makes a key an admin key (see `grpc::admin_auth`).
pub const ADMIN: &str = "keyward:admin";
/// Scopes in this namespace mean something to keyward itself (admin
/// reach): they are granted only by name, never by a wildcard, so that no
/// ordinary-looking grant such as `keyward:*` turns a key into an admin.
pub const RESERVED_PREFIX: &str = "keyward:";
pub const MAX_LEN: usize = 128;
const WILDCARD_SUFFIX: &str = ":*";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidScope {
    #[error("must not be empty")]
    Empty,
    #[error("longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("may only contain letters, digits and _ - . : /, with an optional trailing :*")]
    BadCharacter,
    #[error("keyward: scopes are granted by name, not by wildcard")]
    ReservedWildcard,
}

/// Whether `scope` is in the reserved `keyward:` namespace, in any letter
/// case (so a look-alike cannot be granted where the real one may not).
pub fn is_reserved(scope: &str) -> bool {
    scope
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
}

/// Checks a scope a key will be granted.
pub fn validate(scope: &str) -> Result<(), InvalidScope> {
    if scope.is_empty() {
        return Err(InvalidScope::Empty);
    }
    if scope.len() > MAX_LEN {
        return Err(InvalidScope::TooLong);
    }
    let body = scope.strip_suffix(WILDCARD_SUFFIX).unwrap_or(scope);
    let body_ok = !body.is_empty()
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':' | b'/'));
    if !body_ok {
        Err(InvalidScope::BadCharacter)
    } else if body.len() != scope.len() && is_reserved(scope) {
        Err(InvalidScope::ReservedWildcard)
    } else {
        Ok(())
    }
}

/// Whether `granted` allows `required`: equal, or `granted` is `p:*` and
/// `required` starts with `p:` and is not reserved.
pub fn covers(granted: &str, required: &str) -> bool {
    if granted == required {
        return true;
    }
    match granted.strip_suffix('*') {
        Some(prefix) if prefix.ends_with(':') => {
            required.len() > prefix.len() && required.starts_with(prefix) && !is_reserved(required)
        }
        _ => false,
    }
}

/// Whether the granted scopes cover every required one.
pub fn covers_all<G, R>(granted: &[G], required: &[R]) -> bool
where
    G: AsRef<str>,
    R: AsRef<str>,
{
    required
        .iter()
        .all(|r| granted.iter().any(|g| covers(g.as_ref(), r.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_scopes_cover_themselves_only() {
        assert!(covers("orders:read", "orders:read"));
        assert!(!covers("orders:read", "orders:write"));
        assert!(!covers("orders:read", "orders"));
    }

    #[test]
    fn wildcards_cover_their_namespace() {
        assert!(covers("orders:*", "orders:read"));
        assert!(covers("orders:*", "orders:items:read"));
        assert!(covers("orders:*", "orders:*"));
        assert!(!covers("orders:*", "orders"));
        assert!(!covers("orders:*", "orders:"));
        assert!(!covers("orders:*", "ordersx:read"));
        assert!(!covers("orders:read", "orders:*"));
    }

    #[test]
    fn no_wildcard_covers_a_reserved_scope() {
        for granted in [
            "keyward:*",
            "*",
            "k*",
            "keyward*",
            "KEYWARD:*",
            "keyward:admin:*",
        ] {
            assert!(!covers(granted, ADMIN), "{granted}");
            assert!(!covers(granted, "keyward:admin:x"), "{granted}");
        }
        assert!(covers(ADMIN, ADMIN), "granted by name");
        assert!(!covers("Keyward:admin", ADMIN), "names are exact");
        assert!(!covers_all(&["keyward:*"], &[ADMIN]));
    }

    #[test]
    fn reserved_scopes_are_recognised_in_any_case() {
        assert!(is_reserved("keyward:admin"));
        assert!(is_reserved("KeyWard:admin"));
        assert!(is_reserved("keyward:*"));
        assert!(!is_reserved("keyward"));
        assert!(!is_reserved("keywardx:admin"));
        assert!(!is_reserved("orders:keyward:admin"));
        assert!(!is_reserved("ké"));
    }

    #[test]
    fn covers_all_needs_every_required_scope() {
        let granted = ["orders:*", "users:read"];
        assert!(covers_all(&granted, &["orders:read", "users:read"]));
        assert!(!covers_all(&granted, &["orders:read", "users:write"]));
        assert!(covers_all(&granted, &[] as &[&str]));
        assert!(!covers_all(&[] as &[&str], &["a"]));
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(validate("orders:read"), Ok(()));
        assert_eq!(validate("orders:*"), Ok(()));
        assert_eq!(validate("api/v1.read-all_x"), Ok(()));
        assert_eq!(validate(""), Err(InvalidScope::Empty));
        assert_eq!(validate(&"a".repeat(129)), Err(InvalidScope::TooLong));
        assert_eq!(validate("*"), Err(InvalidScope::BadCharacter));
        assert_eq!(validate(":*"), Err(InvalidScope::BadCharacter));
        assert_eq!(validate("orders*"), Err(InvalidScope::BadCharacter));
        assert_eq!(validate("a b"), Err(InvalidScope::BadCharacter));
        assert_eq!(validate("a:*:b"), Err(InvalidScope::BadCharacter));
        assert_eq!(validate("keyward:admin"), Ok(()));
        assert_eq!(validate("keyward:*"), Err(InvalidScope::ReservedWildcard));
        assert_eq!(validate("KEYWARD:x:*"), Err(InvalidScope::ReservedWildcard));
    }
}
