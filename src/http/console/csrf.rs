//! CSRF: every POST carries a token the attacker's page cannot read. For a
//! signed-in browser it is the session's token; for the sign-in form (no
//! session yet) it is a random value also set in a short-lived cookie, so a
//! foreign page cannot sign a browser into the attacker's session either.
//! The cookies are `SameSite=Strict` as well: the token is the second lock.

/// The form field that carries the token.
pub const FIELD: &str = "csrf";

/// The sign-in form's cookie.
pub const SIGN_IN_COOKIE: &str = "keyward_sign_in";

/// Whether `sent` is `expected`, in time that does not depend on where they
/// first differ.
pub fn matches(expected: &str, sent: Option<&str>) -> bool {
    let Some(sent) = sent else {
        return false;
    };
    if expected.is_empty() || expected.len() != sent.len() {
        return false;
    }
    expected
        .bytes()
        .zip(sent.bytes())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(matches("abc123", Some("abc123")));
        assert!(!matches("abc123", Some("abc124")));
        assert!(!matches("abc123", Some("abc12")));
        assert!(!matches("abc123", None));
        assert!(!matches("", Some("")));
    }
}
