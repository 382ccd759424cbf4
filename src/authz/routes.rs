//! Route rules: which scopes a request needs, by method and path, from
//! keyward's config file. The first rule that matches wins; no match means
//! what `default_route` says (any valid key, or deny).
//!
//! Rules match the request's [`canonical`] path (a path without one is
//! refused, see `path`), with letters compared ignoring case unless
//! `case_sensitive` is set, and methods compared ignoring case (an upstream
//! that upper-cases `post` must not turn it into an unguarded write).
//! Patterns, in one of two syntaxes:
//! - `path_prefix = "/orders"`: the path is `/orders` or lies under
//!   `/orders/` (segment-wise, so `/ordersx` does not match); a prefix that
//!   ends in `/` is a plain string prefix.
//! - `path = "/orders/*/items/**"`: a glob where `*` matches any characters
//!   within one segment (possibly none) and `**`, a whole segment, matches
//!   zero or more segments.

use serde::Deserialize;

use super::{
    path::{PathError, canonical},
    pattern::PathPattern,
};

/// One `[[ext_authz.routes]]` entry as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// HTTP methods the rule applies to; absent means every method.
    pub methods: Option<Vec<String>>,
    pub path_prefix: Option<String>,
    pub path: Option<String>,
    /// Scopes the request needs; `[]` means any valid key.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    methods: Option<Vec<String>>,
    path: PathPattern,
    scopes: Vec<String>,
}

impl Rule {
    /// Checks and compiles a rule; the error says what is wrong with it.
    /// Without `case_sensitive` the pattern is lower-cased, as request paths
    /// are before matching.
    pub fn compile(spec: RuleSpec, case_sensitive: bool) -> Result<Self, String> {
        let methods = spec
            .methods
            .map(|methods| {
                if methods.is_empty() {
                    return Err(
                        "methods: must not be empty (leave it out to match every method)"
                            .to_owned(),
                    );
                }
                methods
                    .into_iter()
                    .map(|m| {
                        let upper = m.to_ascii_uppercase();
                        if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
                            Err(format!("methods: {m:?} is not an HTTP method"))
                        } else {
                            Ok(upper)
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let fold = |p: String| {
            if case_sensitive {
                p
            } else {
                p.to_ascii_lowercase()
            }
        };
        let path = match (spec.path_prefix, spec.path) {
            (Some(prefix), None) => {
                check_path_syntax("path_prefix", &prefix)?;
                let prefix = fold(prefix);
                if prefix.contains('*') {
                    return Err(format!(
                        "path_prefix: {prefix:?} contains `*`; use `path` for globs"
                    ));
                }
                PathPattern::prefix(prefix)
            }
            (None, Some(glob)) => {
                check_path_syntax("path", &glob)?;
                let glob = fold(glob);
                PathPattern::glob(&glob)?
            }
            (Some(_), Some(_)) => return Err("set one of path_prefix and path, not both".into()),
            (None, None) => return Err("set one of path_prefix and path".into()),
        };
        for scope in &spec.scopes {
            crate::scope::validate(scope).map_err(|e| format!("scopes: {scope:?}: {e}"))?;
        }
        Ok(Self {
            methods,
            path,
            scopes: spec.scopes,
        })
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether the rule applies to a canonical path (case-folded like the
    /// pattern).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(methods) = &self.methods
            && !methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return false;
        }
        self.path.matches(path)
    }
}

fn check_path_syntax(field: &str, path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{field}: {path:?} must start with `/`"));
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "{field}: {path:?} must not contain `?` or `#` (the query is not matched)"
        ));
    }
    // A pattern no canonical path can equal would never match, or match
    // something else than it says: refuse it with the reason.
    match canonical(path) {
        Ok(c) if c.as_str() == path => Ok(()),
        Ok(c) => Err(format!(
            "{field}: {path:?} is not in canonical form; write it as {:?}",
            c.as_str()
        )),
        Err(e) => Err(format!(
            "{field}: {path:?} has {e}, which no request path is matched with"
        )),
    }
}

/// What a request with no matching rule needs (`default_route`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultRoute {
    /// Any valid key: rules only add requirements (the behaviour before
    /// `default_route` existed, kept as the default for compatibility).
    #[default]
    AnyValidKey,
    /// Refused with 403: every path must be named by a rule.
    Deny,
}

/// What a request needs, by the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// A rule matched: these scopes (`[]`: any valid key).
    Scopes(&'a [String]),
    /// No rule matched and the default is any valid key.
    AnyValidKey,
    /// No rule matched and the default is to deny.
    Deny,
}

/// The rules of the config file, in order, with how they compare paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRules {
    rules: Vec<Rule>,
    default: DefaultRoute,
    case_sensitive: bool,
}

impl RouteRules {
    /// `rules` must have been compiled with the same `case_sensitive`.
    pub fn new(rules: Vec<Rule>, default: DefaultRoute, case_sensitive: bool) -> Self {
        Self {
            rules,
            default,
            case_sensitive,
        }
    }

    /// Whether the rules can change a decision at all: without rules and
    /// with the permissive default, the path is never looked at.
    pub fn apply(&self) -> bool {
        !self.rules.is_empty() || self.default == DefaultRoute::Deny
    }

    /// What a request needs. `target` is the raw request target (path and
    /// query); one with no canonical form is refused, never matched loosely.
    pub fn route(&self, method: &str, target: &str) -> Result<Route<'_>, PathError> {
        let path = canonical(target)?;
        let path = if self.case_sensitive {
            path
        } else {
            path.into_lowercase()
        };
        Ok(
            match self.rules.iter().find(|r| r.matches(method, path.as_str())) {
                Some(rule) => Route::Scopes(rule.scopes()),
                None if self.default == DefaultRoute::Deny => Route::Deny,
                None => Route::AnyValidKey,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(methods: Option<&[&str]>, prefix: Option<&str>, glob: Option<&str>) -> RuleSpec {
        RuleSpec {
            methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            path_prefix: prefix.map(Into::into),
            path: glob.map(Into::into),
            scopes: vec!["orders:read".into()],
        }
    }

    fn rule(
        methods: Option<&[&str]>,
        prefix: Option<&str>,
        glob: Option<&str>,
    ) -> Result<Rule, String> {
        Rule::compile(spec(methods, prefix, glob), true)
    }

    fn glob(g: &str) -> Rule {
        rule(None, None, Some(g)).unwrap()
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let r = rule(None, Some("/orders"), None).unwrap();
        for yes in ["/orders", "/orders/", "/orders/1/items"] {
            assert!(r.matches("GET", yes), "{yes}");
        }
        for no in ["/ordersx", "/order", "/", "/v1/orders"] {
            assert!(!r.matches("GET", no), "{no}");
        }
        let r = rule(None, Some("/api/"), None).unwrap();
        assert!(r.matches("GET", "/api/x"));
        assert!(!r.matches("GET", "/api"));
        assert!(
            rule(None, Some("/"), None)
                .unwrap()
                .matches("GET", "/anything")
        );
    }

    #[test]
    fn star_stays_within_a_segment() {
        let r = glob("/orders/*/items");
        assert!(r.matches("GET", "/orders/42/items"));
        assert!(!r.matches("GET", "/orders/4/2/items"));
        assert!(!r.matches("GET", "/orders/42/items/1"));
        let r = glob("/files/*.json");
        assert!(r.matches("GET", "/files/a.json"));
        assert!(r.matches("GET", "/files/.json"));
        assert!(!r.matches("GET", "/files/a.jsonx"));
        assert!(!r.matches("GET", "/files/d/a.json"));
        let r = glob("/v*/orders");
        assert!(r.matches("GET", "/v1/orders") && r.matches("GET", "/v22/orders"));
    }

    #[test]
    fn double_star_spans_zero_or_more_segments() {
        let r = glob("/orders/**");
        for yes in ["/orders", "/orders/", "/orders/1", "/orders/1/items/2"] {
            assert!(r.matches("GET", yes), "{yes}");
        }
        assert!(!r.matches("GET", "/ordersx/1"));
        let r = glob("/**/items");
        for yes in ["/items", "/a/items", "/a/b/c/items"] {
            assert!(r.matches("GET", yes), "{yes}");
        }
        assert!(!r.matches("GET", "/a/items/b"));
        let r = glob("/a/**/b/**/c");
        assert!(r.matches("GET", "/a/b/c") && r.matches("GET", "/a/x/b/y/z/c"));
        assert!(!r.matches("GET", "/a/x/c"));
        assert!(glob("/**").matches("DELETE", "/any/thing"));
    }

    #[test]
    fn methods_narrow_a_rule_and_ignore_case_in_the_file() {
        let r = rule(Some(&["get", "HEAD"]), Some("/orders"), None).unwrap();
        assert!(r.matches("GET", "/orders") && r.matches("HEAD", "/orders"));
        assert!(!r.matches("POST", "/orders"));
    }

    #[test]
    fn first_match_wins_and_the_query_is_ignored() {
        let rules = RouteRules::new(
            vec![
                Rule::compile(
                    RuleSpec {
                        methods: Some(vec!["POST".into()]),
                        path_prefix: Some("/orders".into()),
                        path: None,
                        scopes: vec!["orders:write".into()],
                    },
                    true,
                )
                .unwrap(),
                glob("/orders/**"),
            ],
            DefaultRoute::AnyValidKey,
            true,
        );
        let write = ["orders:write".to_owned()];
        let read = ["orders:read".to_owned()];
        assert_eq!(
            rules.route("POST", "/orders?x=1"),
            Ok(Route::Scopes(&write))
        );
        assert_eq!(
            rules.route("GET", "/orders/1?y=/admin"),
            Ok(Route::Scopes(&read))
        );
        assert_eq!(rules.route("GET", "/users"), Ok(Route::AnyValidKey));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let err = |r: Result<Rule, String>| r.unwrap_err();
        assert!(err(rule(None, None, None)).contains("set one of"));
        assert!(err(rule(None, Some("/a"), Some("/b"))).contains("not both"));
        assert!(err(rule(None, Some("a"), None)).contains("must start with `/`"));
        assert!(err(rule(None, Some("/a/*"), None)).contains("use `path` for globs"));
        assert!(err(rule(None, None, Some("/a/**b"))).contains("whole segment"));
        assert!(err(rule(None, None, Some("/a?b=1"))).contains("query"));
        assert!(err(rule(Some(&[]), Some("/a"), None)).contains("methods"));
        assert!(err(rule(Some(&["GE T"]), Some("/a"), None)).contains("not an HTTP method"));
        let bad_scope = Rule::compile(
            RuleSpec {
                methods: None,
                path_prefix: Some("/a".into()),
                path: None,
                scopes: vec!["bad scope".into()],
            },
            true,
        );
        assert!(err(bad_scope).contains("scopes: \"bad scope\""));
    }

    fn guarded(default: DefaultRoute, case_sensitive: bool) -> RouteRules {
        let admin = RuleSpec {
            scopes: vec!["admin:all".into()],
            ..spec(None, None, Some("/admin/**"))
        };
        let writes = RuleSpec {
            scopes: vec!["orders:write".into()],
            ..spec(Some(&["POST", "DELETE"]), Some("/orders"), None)
        };
        let rules = [admin, writes]
            .into_iter()
            .map(|s| Rule::compile(s, case_sensitive).unwrap())
            .collect();
        RouteRules::new(rules, default, case_sensitive)
    }

    #[test]
    fn paths_are_matched_in_canonical_form_only() {
        let rules = guarded(DefaultRoute::AnyValidKey, false);
        let admin = ["admin:all".to_owned()];
        for p in ["/admin/x", "/%61dmin/x", "/ADMIN/x", "/Admin", "/admin/"] {
            assert_eq!(rules.route("GET", p), Ok(Route::Scopes(&admin)), "{p}");
        }
        for (p, e) in [
            ("/admin;x/y", PathError::PathParameter),
            ("/public/../admin", PathError::DotSegment),
            ("//admin/x", PathError::EmptySegment),
            ("/admin%2Fx", PathError::EncodedDelimiter),
        ] {
            assert_eq!(rules.route("GET", p), Err(e), "{p}");
        }
        // Methods ignore case: `post` is the write an upstream may take it for.
        let write = ["orders:write".to_owned()];
        assert_eq!(rules.route("post", "/orders/1"), Ok(Route::Scopes(&write)));
    }

    #[test]
    fn case_sensitive_rules_compare_letters_exactly() {
        let rules = guarded(DefaultRoute::AnyValidKey, true);
        assert_eq!(rules.route("GET", "/ADMIN/x"), Ok(Route::AnyValidKey));
        assert!(matches!(
            rules.route("GET", "/admin/x"),
            Ok(Route::Scopes(_))
        ));
    }

    #[test]
    fn the_default_route_decides_unmatched_paths() {
        assert!(!RouteRules::default().apply());
        assert_eq!(
            RouteRules::default().route("GET", "/x"),
            Ok(Route::AnyValidKey)
        );
        let deny = guarded(DefaultRoute::Deny, false);
        assert!(deny.apply());
        assert_eq!(deny.route("GET", "/public"), Ok(Route::Deny));
        assert!(RouteRules::new(vec![], DefaultRoute::Deny, false).apply());
    }

    #[test]
    fn patterns_must_be_canonical() {
        let err = |p: &str| rule(None, None, Some(p)).unwrap_err();
        assert!(err("/%61dmin/**").contains("write it as \"/admin/**\""));
        assert!(err("/caf%c3%a9").contains("write it as \"/caf%C3%A9\""));
        assert!(err("/a;b").contains("`;` path parameter"));
        assert!(err("/a/../b").contains("`.` or `..` segment"));
        assert!(err("/a//b").contains("empty segment"));
        let folded = Rule::compile(spec(None, Some("/Admin"), None), false).unwrap();
        assert!(folded.matches("GET", "/admin/x"));
    }
}
