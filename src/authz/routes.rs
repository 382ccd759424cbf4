//! Route rules: which scopes a request needs, by method and path, from
//! keyward's config file. The first rule that matches wins; no match means
//! any valid key will do.
//!
//! Paths are matched without their query string, in one of two syntaxes:
//! - `path_prefix = "/orders"`: the path is `/orders` or lies under
//!   `/orders/` (segment-wise, so `/ordersx` does not match); a prefix that
//!   ends in `/` is a plain string prefix.
//! - `path = "/orders/*/items/**"`: a glob where `*` matches any characters
//!   within one segment (possibly none) and `**`, a whole segment, matches
//!   zero or more segments.

use serde::Deserialize;

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
enum PathPattern {
    Prefix(String),
    Glob(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more whole segments.
    AnyDepth,
    /// Literal characters, `*` matching any run within the segment.
    Pattern(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    methods: Option<Vec<String>>,
    path: PathPattern,
    scopes: Vec<String>,
}

impl Rule {
    /// Checks and compiles a rule; the error says what is wrong with it.
    pub fn compile(spec: RuleSpec) -> Result<Self, String> {
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
        let path = match (spec.path_prefix, spec.path) {
            (Some(prefix), None) => {
                check_path_syntax("path_prefix", &prefix)?;
                if prefix.contains('*') {
                    return Err(format!(
                        "path_prefix: {prefix:?} contains `*`; use `path` for globs"
                    ));
                }
                PathPattern::Prefix(prefix)
            }
            (None, Some(glob)) => {
                check_path_syntax("path", &glob)?;
                PathPattern::Glob(compile_glob(&glob)?)
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

    /// Whether the rule applies; `path` is without its query string.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(methods) = &self.methods
            && !methods.iter().any(|m| m == method)
        {
            return false;
        }
        match &self.path {
            PathPattern::Prefix(prefix) => {
                if prefix.ends_with('/') {
                    path.starts_with(prefix.as_str())
                } else {
                    path.strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                }
            }
            PathPattern::Glob(segments) => glob_match(segments, Some(path)),
        }
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
    Ok(())
}

fn compile_glob(glob: &str) -> Result<Vec<Segment>, String> {
    let mut segments: Vec<Segment> = Vec::new();
    for part in glob.split('/') {
        if part == "**" {
            // `**/**` is the same as `**`.
            if segments.last() != Some(&Segment::AnyDepth) {
                segments.push(Segment::AnyDepth);
            }
        } else if part.contains("**") {
            return Err(format!(
                "path: {glob:?}: `**` must be a whole segment (`/a/**/b`); use `*` within a segment"
            ));
        } else {
            segments.push(Segment::Pattern(part.to_owned()));
        }
    }
    Ok(segments)
}

/// `rest` is the part of the path not yet matched (`None` once every
/// segment is used).
fn glob_match(pattern: &[Segment], rest: Option<&str>) -> bool {
    let split = |s: &str| -> (usize, Option<usize>) {
        match s.find('/') {
            Some(i) => (i, Some(i + 1)),
            None => (s.len(), None),
        }
    };
    match pattern.split_first() {
        None => rest.is_none(),
        Some((Segment::AnyDepth, tail)) => {
            if glob_match(tail, rest) {
                return true;
            }
            match rest {
                None => false,
                Some(s) => {
                    let (_, next) = split(s);
                    glob_match(pattern, next.map(|n| &s[n..]))
                }
            }
        }
        Some((Segment::Pattern(p), tail)) => match rest {
            None => false,
            Some(s) => {
                let (end, next) = split(s);
                wildcard(p.as_bytes(), &s.as_bytes()[..end])
                    && glob_match(tail, next.map(|n| &s[n..]))
            }
        },
    }
}

/// `*` matches any run of bytes (the segment has no `/`).
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The rules of the config file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRules {
    rules: Vec<Rule>,
}

impl RouteRules {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first matching rule. `path` may carry a query string.
    pub fn find(&self, method: &str, path: &str) -> Option<&Rule> {
        let path = path_only(path);
        self.rules.iter().find(|r| r.matches(method, path))
    }
}

/// The path without its query string or fragment.
pub fn path_only(path: &str) -> &str {
    path.find(['?', '#']).map_or(path, |i| &path[..i])
}

/// Whether a path is in the normal form rules are written for: absolute, no
/// empty, `.` or `..` segments, no encoded `/`, `\` or `.`. Envoy produces it
/// with `normalize_path`, `merge_slashes` and
/// `path_with_escaped_slashes_action`; a path that is not is refused rather
/// than matched, so `/public/../admin` cannot slip past an `/admin` rule.
pub fn is_normal(path: &str) -> bool {
    let path = path_only(path);
    if !path.starts_with('/') || path.contains('\\') {
        return false;
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let code = bytes.get(i + 1..i + 3).map(|h| h.to_ascii_uppercase());
            if matches!(code.as_deref(), Some(b"2F" | b"5C" | b"2E")) {
                return false;
            }
        }
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        // A trailing slash leaves one empty last segment, which is fine.
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        methods: Option<&[&str]>,
        prefix: Option<&str>,
        glob: Option<&str>,
    ) -> Result<Rule, String> {
        Rule::compile(RuleSpec {
            methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            path_prefix: prefix.map(Into::into),
            path: glob.map(Into::into),
            scopes: vec!["orders:read".into()],
        })
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
        let rules = RouteRules::new(vec![
            Rule::compile(RuleSpec {
                methods: Some(vec!["POST".into()]),
                path_prefix: Some("/orders".into()),
                path: None,
                scopes: vec!["orders:write".into()],
            })
            .unwrap(),
            glob("/orders/**"),
        ]);
        assert_eq!(
            rules.find("POST", "/orders?x=1").unwrap().scopes(),
            ["orders:write"]
        );
        assert_eq!(
            rules.find("GET", "/orders/1?y=/admin").unwrap().scopes(),
            ["orders:read"]
        );
        assert!(rules.find("GET", "/users").is_none());
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
        let bad_scope = Rule::compile(RuleSpec {
            methods: None,
            path_prefix: Some("/a".into()),
            path: None,
            scopes: vec!["bad scope".into()],
        });
        assert!(err(bad_scope).contains("scopes: \"bad scope\""));
    }

    #[test]
    fn only_normal_paths_are_matched() {
        for ok in ["/", "/orders", "/orders/", "/orders/1?next=/../x", "/a%20b"] {
            assert!(is_normal(ok), "{ok}");
        }
        for bad in [
            "",
            "orders",
            "//orders",
            "/a//b",
            "/a/./b",
            "/a/../admin",
            "/a/..",
            "/a/%2e%2e/admin",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
        ] {
            assert!(!is_normal(bad), "{bad}");
        }
    }
}
