//! The general laws of scope coverage: reflexive, transitive, a wildcard
//! covers exactly its namespace, more granted never covers less.

use keyward::scope::{covers, covers_all, validate};
use proptest::prelude::*;

const CASES: u32 = 3_000;

/// Valid scopes from a small alphabet, so that prefixes and namespaces
/// collide often: `a`, `a:b`, `a:*`, `a:b:*`, `ab/c.d`.
fn scope() -> impl Strategy<Value = String> {
    prop_oneof![exact(), wildcard()]
}

fn exact() -> impl Strategy<Value = String> {
    "[ab]{1,2}(:[ab]{1,2}){0,2}"
}

fn wildcard() -> impl Strategy<Value = String> {
    exact().prop_map(|body| format!("{body}:*"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn generated_scopes_are_valid(s in scope()) {
        prop_assert_eq!(validate(&s), Ok(()));
    }

    #[test]
    fn covers_never_panics(granted in any::<String>(), required in any::<String>()) {
        let _ = covers(&granted, &required);
    }

    #[test]
    fn every_scope_covers_itself(s in scope()) {
        prop_assert!(covers(&s, &s));
    }

    #[test]
    fn coverage_is_transitive(a in scope(), b in scope(), c in scope()) {
        if covers(&a, &b) && covers(&b, &c) {
            prop_assert!(covers(&a, &c), "{a} covers {b} covers {c}");
        }
    }

    #[test]
    fn an_exact_scope_covers_only_itself(a in exact(), b in scope()) {
        prop_assert_eq!(covers(&a, &b), a == b);
    }

    #[test]
    fn a_wildcard_covers_exactly_its_namespace(a in wildcard(), b in scope()) {
        let namespace = &a[..a.len() - 1];
        let inside = b.len() > namespace.len() && b.starts_with(namespace);
        prop_assert_eq!(covers(&a, &b), a == b || inside, "{} / {}", a, b);
    }

    #[test]
    fn more_granted_scopes_never_cover_less(
        granted in prop::collection::vec(scope(), 0..4),
        more in scope(),
        required in prop::collection::vec(scope(), 0..4),
    ) {
        let mut wider = granted.clone();
        wider.push(more);
        if covers_all(&granted, &required) {
            prop_assert!(covers_all(&wider, &required));
        }
        // ...and each required scope is judged on its own.
        let all = required.iter().all(|r| covers_all(&granted, std::slice::from_ref(r)));
        prop_assert_eq!(covers_all(&granted, &required), all);
    }

    // The reserved-scope law belongs here once `keyward:` scopes are
    // reserved (issue 12, helper B1): for every wildcard `w` a key can be
    // granted and every `keyward:` scope `r`, `!covers(w, r)`; only the
    // exact name covers a reserved scope.
}
